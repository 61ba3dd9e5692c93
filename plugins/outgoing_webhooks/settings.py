"""The ``[plugins.outgoing_webhooks]`` table: its JSON Schema and its parsed form."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from statusflow.plugins.outgoing_webhooks.signing import secret_problem

ENDPOINT_ID = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"}
URL = {"type": "string", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[^\\s]+$", "maxLength": 2000}
SECRET = {
    "type": "string",
    "minLength": 1,
    "maxLength": 500,
    "description": "a Standard Webhooks secret: whsec_ and the base64 of 24 to 64 random bytes",
}
DESCRIPTION = {"type": "string", "maxLength": 500}


def shown_url(url: str) -> str:
    """``url`` as a message may show it: without credentials (``user:password@``), query or
    fragment, which may carry secrets."""
    return re.sub(r"[?#].*", "", re.sub(r"//[^/@]*@", "//", url, count=1), count=1)


def url_problem(url: str) -> str | None:
    """Why ``url`` (which matched :data:`URL`) cannot be delivered to, or ``None``: it
    must parse, with a host and a port in range (every attempt would fail otherwise)."""
    shown = shown_url(url)
    try:
        parsed = urlsplit(url)
        port = parsed.port  # raises for a port out of range
    except ValueError as exc:
        reason = str(exc).replace(url, shown)
        return f"url {shown!r} is not a valid URL: {reason}"
    if port == 0:
        return f"url {shown!r} has port 0"
    if not parsed.hostname:
        return f"url {shown!r} has no host"
    return None


def _seconds(default: float, description: str) -> dict[str, Any]:
    return {"type": "number", "exclusiveMinimum": 0, "default": default, "description": description}


SETTINGS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "endpoints": {
            "type": "array",
            "description": "endpoints defined here; the API shows them but cannot change them",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["id", "url", "secret"],
                "properties": {
                    "id": ENDPOINT_ID,
                    "url": URL,
                    "secret": SECRET,
                    "enabled": {"type": "boolean", "default": True},
                    "description": DESCRIPTION,
                },
            },
        },
        "poll_interval": _seconds(5.0, "look for due deliveries at least this often"),
        "request_timeout": _seconds(10.0, "a delivery attempt fails after this long"),
        "lease": _seconds(60.0, "a claimed delivery is claimed again after this long"),
        "retry_initial_delay": _seconds(5.0, "the first retry comes after about this long"),
        "retry_max_delay": _seconds(600.0, "retries are at most this far apart"),
        "give_up_after": _seconds(259200.0, "a delivery is dead this long after its move"),
        "keep_delivered": _seconds(
            604800.0, "a delivered delivery is deleted this long after it was delivered"
        ),
        "concurrency": {"type": "integer", "minimum": 1, "maximum": 256, "default": 8},
        "batch_size": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 200},
    },
}


@dataclass(frozen=True)
class EndpointConfig:
    """An endpoint of the configuration file."""

    id: str
    url: str
    secret: str
    enabled: bool = True
    description: str = ""


@dataclass(frozen=True)
class Settings:
    """The plugin's settings, with their defaults (times in seconds)."""

    endpoints: tuple[EndpointConfig, ...] = ()
    poll_interval: float = 5.0
    request_timeout: float = 10.0
    lease: float = 60.0
    retry_initial_delay: float = 5.0
    retry_max_delay: float = 600.0
    give_up_after: float = 259200.0
    keep_delivered: float = 604800.0
    concurrency: int = 8
    batch_size: int = 200
    problems: tuple[str, ...] = field(default=())

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> Settings:
        """Parse a table already checked against :data:`SETTINGS_SCHEMA`."""
        endpoints = tuple(
            EndpointConfig(
                id=e["id"],
                url=e["url"],
                secret=e["secret"],
                enabled=e.get("enabled", True),
                description=e.get("description", ""),
            )
            for e in table.get("endpoints", ())
        )
        values = {k: table[k] for k in cls.__dataclass_fields__ if k in table and k != "endpoints"}
        settings = cls(endpoints=endpoints, **values)
        problems = [p for e in endpoints if (p := url_problem(e.url)) is not None]
        problems += [
            f"endpoint {e.id!r}: {p}" for e in endpoints if (p := secret_problem(e.secret))
        ]
        ids = [e.id for e in endpoints]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            problems.append(f"endpoint ids must be unique; repeated: {', '.join(duplicates)}")
        if settings.lease <= settings.request_timeout:
            problems.append(
                f"lease ({settings.lease} s) must be longer than request_timeout "
                f"({settings.request_timeout} s), or a slow attempt could be sent twice at once"
            )
        if settings.retry_max_delay < settings.retry_initial_delay:
            problems.append("retry_max_delay must not be shorter than retry_initial_delay")
        return cls(**{**settings.__dict__, "problems": tuple(problems)})
