"""Settings from a TOML file and the environment, validated once at start-up."""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import jsonschema
import phonenumbers

from statusflow.errors import StartupError
from statusflow.serving import setting_errors
from statusflow.serving.api_keys import KEY_SCHEMA, ApiKey, credentials, keys_from_config
from statusflow.serving.plugin_settings import resolve_env

DEFAULT_DATABASE_URL = "sqlite:///statusflow.db"
ENV_REFERENCE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["$env"],
    "properties": {"$env": {"type": "string", "minLength": 1}},
}

CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "database_url": {"type": "string", "minLength": 1},
        "server": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "host": {"type": "string", "minLength": 1},
                "port": {"type": "integer", "minimum": 0, "maximum": 65535},
                "public_url": {"type": "string", "pattern": "^https?://"},
                "max_body_bytes": {"type": "integer", "minimum": 1},
                "secret": {"type": "string", "minLength": 16},
                "request_timeout_seconds": {"type": "number", "exclusiveMinimum": 0},
                "public_rate_per_second": {"type": "number", "minimum": 0},
                "public_burst": {"type": "integer", "minimum": 1},
                "trusted_proxies": {"type": "array", "items": {"type": "string", "minLength": 1}},
                "migrate_on_start": {"type": "boolean"},
            },
        },
        "auth": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "tokens": {"type": "array", "items": {"type": "string", "minLength": 1}},
                "keys": {"type": "array", "items": KEY_SCHEMA},
            },
        },
        "retention": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"events_days": {"type": "integer", "minimum": 1, "maximum": 36500}},
        },
        "plugins": {
            "type": "object",
            "properties": {
                "disable": {"type": "array", "items": {"type": "string"}},
                "enable": {"type": "array", "items": {"type": "string"}},
                "dirs": {"type": "array", "items": {"type": "string", "minLength": 1}},
            },
            "additionalProperties": {"type": "object"},
        },
        "phones": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"default_region": {"type": "string", "pattern": "^[A-Za-z]{2}$"}},
        },
        "actions": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "max_moves_per_order_per_day": {"type": "integer", "minimum": 1},
                "max_attempts": {"type": "integer", "minimum": 1, "maximum": 100},
                "retry_initial_seconds": {"type": "number", "exclusiveMinimum": 0},
                "retry_max_seconds": {"type": "number", "exclusiveMinimum": 0},
                "lease_seconds": {"type": "number", "exclusiveMinimum": 0},
                "run_timeout_seconds": {"type": "number", "exclusiveMinimum": 0},
                "concurrency": {"type": "integer", "minimum": 1, "maximum": 1000},
                "run": {"type": "boolean"},
            },
        },
        "ui": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "enabled": {"type": "boolean"},
                "session_hours": {"type": "number", "exclusiveMinimum": 0, "maximum": 8760},
            },
        },
        "smtp": {
            "type": "object",
            "additionalProperties": False,
            "required": ["host", "from"],
            "properties": {
                "host": {"type": "string", "minLength": 1},
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "username": {"type": "string"},
                "password": {"anyOf": [{"type": "string"}, ENV_REFERENCE]},
                "from": {"type": "string", "minLength": 3},
                "starttls": {"type": "boolean"},
                "tls": {"type": "boolean"},
                "timeout_seconds": {"type": "number", "exclusiveMinimum": 0},
            },
        },
    },
}


@dataclass(frozen=True)
class ActionSettings:
    """``[actions]``: how runs are retried, leased and bounded."""

    max_moves_per_order_per_day: int = 100
    """Moves that actions may make of one order in 24 hours; a run past it fails."""
    max_attempts: int = 5
    """Attempts of a run before it is ``failed`` with its last error."""
    retry_initial_seconds: float = 30.0
    """The first retry comes after about this long; each later one twice as long."""
    retry_max_seconds: float = 3600.0
    """Retries are at most this far apart."""
    lease_seconds: float = 300.0
    """A run claimed by an instance that died is claimed again this long after."""
    run_timeout_seconds: float = 120.0
    """An attempt that takes longer fails (and is retried)."""
    concurrency: int = 32
    """Runs this instance carries out at once."""
    run: bool = True
    """Whether this instance runs due runs (every instance schedules them)."""


@dataclass(frozen=True)
class Settings:
    """Everything configurable, with the contract's defaults."""

    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str | None = None
    max_body_bytes: int = 1_048_576
    secret: str | None = None
    request_timeout_seconds: float = 30.0
    public_rate_per_second: float = 50.0
    public_burst: int = 100
    trusted_proxies: tuple[str, ...] = ()
    migrate_on_start: bool = True
    tokens: tuple[str, ...] = ()
    """``[auth] tokens``: plain tokens, allowed every scope."""
    keys: tuple[ApiKey, ...] = ()
    """``[[auth.keys]]``: named keys with scopes."""
    events_days: int | None = None
    """``[retention] events_days``: events older than this many days are deleted."""
    disable: tuple[str, ...] = ()
    enable: tuple[str, ...] | None = None
    plugin_dirs: tuple[str, ...] = ()
    """Plugins folders (``[plugins] dirs``, ``--plugins-dir``), as absolute paths."""
    default_region: str = "US"
    plugin_tables: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    actions: ActionSettings = field(default_factory=ActionSettings)
    ui_enabled: bool = True
    """``[ui] enabled``: whether ``/ui/`` serves the board (``GET /`` redirects there)."""
    ui_session_hours: float = 12.0
    """``[ui] session_hours``: how long a board sign-in lasts."""
    tables: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Top-level tables the kernel keeps for plugins (``smtp``), ``$env`` resolved."""

    @property
    def base_url(self) -> str:
        """``public_url`` without its trailing slash, or the listening address."""
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"http://{self.host}:{self.port}"

    @property
    def auth_enabled(self) -> bool:
        """Whether ``/api/*`` needs a token (plain tokens or keys are configured)."""
        return bool(self.tokens or self.keys)

    def accepted_keys(self) -> tuple[ApiKey, ...]:
        """The plain tokens (as keys of every scope) and the named keys."""
        return credentials(self.tokens, self.keys)

    def is_enabled(self, plugin: str) -> bool:
        """Whether this configuration loads the plugin named ``plugin``."""
        if plugin in self.disable:
            return False
        return self.enable is None or plugin in self.enable

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with the given fields replaced (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def settings_from_mapping(raw: Mapping[str, Any], base: Path | None = None) -> Settings:
    """Validate a parsed TOML document and turn it into :class:`Settings`.

    :param base: the folder relative paths are read from (``[plugins] dirs``); default:
        the working directory.
    """
    _check_plugins_keys(raw.get("plugins"))
    errors = sorted(
        jsonschema.Draft202012Validator(CONFIG_SCHEMA).iter_errors(raw),
        key=lambda e: [str(p) for p in e.absolute_path],  # not by message: it has the value
    )
    if errors:
        first = errors[0]  # said without the value: it may be a secret (setting_errors)
        where = setting_errors.where(first) or "(top level)"
        raise StartupError(f"configuration error at {where}: {setting_errors.describe(first)}")
    server = raw.get("server", {})
    for proxy in server.get("trusted_proxies", ()):
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError as exc:
            raise StartupError(f"configuration error at server.trusted_proxies: {exc}") from None
    region = raw.get("phones", {}).get("default_region", "US").upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise StartupError(
            f"configuration error at phones.default_region: {region!r} is not a region "
            "phone numbers are known for (an ISO 3166 code such as US, GB or DE)"
        )
    plugins = raw.get("plugins", {})
    enable = plugins.get("enable")
    auth = raw.get("auth", {})
    keys = keys_from_config(auth.get("keys", ()))
    tokens = tuple(auth.get("tokens", ()))
    credentials(tokens, keys)  # two keys sharing a token stop start-up
    actions = ActionSettings(**raw.get("actions", {}))
    if actions.lease_seconds <= actions.run_timeout_seconds:
        raise StartupError(
            f"configuration error at actions.lease_seconds: {actions.lease_seconds} must be "
            f"longer than run_timeout_seconds ({actions.run_timeout_seconds}), or a slow run "
            "could be claimed again while it still runs"
        )
    tables = {}
    if "smtp" in raw:
        tables["smtp"] = resolve_env(dict(raw["smtp"]), "[smtp]")
    return Settings(
        database_url=raw.get("database_url", DEFAULT_DATABASE_URL),
        host=server.get("host", "127.0.0.1"),
        port=server.get("port", 8080),
        public_url=server.get("public_url"),
        max_body_bytes=server.get("max_body_bytes", 1_048_576),
        secret=server.get("secret"),
        request_timeout_seconds=float(server.get("request_timeout_seconds", 30.0)),
        public_rate_per_second=float(server.get("public_rate_per_second", 50.0)),
        public_burst=server.get("public_burst", 100),
        trusted_proxies=tuple(server.get("trusted_proxies", ())),
        migrate_on_start=server.get("migrate_on_start", True),
        tokens=tokens,
        keys=keys,
        events_days=raw.get("retention", {}).get("events_days"),
        disable=tuple(plugins.get("disable", ())),
        enable=tuple(enable) if enable is not None else None,
        plugin_dirs=plugin_dirs(plugins.get("dirs", ()), base),
        default_region=region,
        plugin_tables={k: v for k, v in plugins.items() if isinstance(v, dict)},
        actions=actions,
        ui_enabled=raw.get("ui", {}).get("enabled", True),
        ui_session_hours=float(raw.get("ui", {}).get("session_hours", 12.0)),
        tables=tables,
    )


def _check_plugins_keys(plugins: Any) -> None:
    """``[plugins]`` takes any table (a plugin's settings): a misspelt ``disable`` would
    otherwise be reported as a plugin's table that is not a table."""
    if not isinstance(plugins, Mapping):
        return  # the schema says what is wrong
    known = CONFIG_SCHEMA["properties"]["plugins"]["properties"]
    odd = [
        key
        for key, value in plugins.items()
        if key not in known
        and not isinstance(value, dict)
        and setting_errors.did_you_mean(key, known)  # else: a plugin's table that is not one
    ]
    if odd:
        raise StartupError(
            f"configuration error at plugins: {setting_errors.unknown_names('key', odd, known)} "
            "(a plugin's own settings are a table: [plugins.NAME])"
        )


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Settings from ``path`` (or ``$STATUSFLOW_CONFIG``), then the environment.

    ``STATUSFLOW_DATABASE_URL`` overrides ``database_url``; ``STATUSFLOW_TOKENS``
    (comma-separated) replaces ``auth.tokens``. No file: the defaults.
    """
    path = path or os.environ.get("STATUSFLOW_CONFIG")
    raw: dict[str, Any] = {}
    if path:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise StartupError(f"configuration file not found: {path}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise StartupError(f"configuration file {path} is not valid TOML: {exc}") from exc
    settings = settings_from_mapping(raw, Path(path).parent if path else None)
    where = "database_url"
    env_url = os.environ.get("STATUSFLOW_DATABASE_URL")
    if env_url:
        settings = replace(settings, database_url=env_url)
        where = "STATUSFLOW_DATABASE_URL"
    _check_database_url(settings.database_url, where)
    env_tokens = os.environ.get("STATUSFLOW_TOKENS")
    if env_tokens:  # set and not empty: it replaces the file's list
        tokens = tuple(token.strip() for token in env_tokens.split(",") if token.strip())
        if not tokens:  # never a silent "no auth" from a typo
            raise StartupError("STATUSFLOW_TOKENS holds no token (comma-separated tokens)")
        credentials(tokens, settings.keys)  # a key sharing a plain token stops start-up
        settings = replace(settings, tokens=tokens)
    return settings


def plugin_dirs(dirs: Iterable[str], base: Path | None = None) -> tuple[str, ...]:
    """The plugins folders as absolute paths, a relative one read from ``base`` (the
    configuration file's folder) or the working directory."""
    root = Path.cwd() if base is None else base
    return tuple(str((root / Path(folder).expanduser()).resolve()) for folder in dirs)


def _check_database_url(url: str, where: str) -> None:
    """A URL the storage can use, or a :class:`StartupError` saying what is wrong."""
    from sqlalchemy.exc import ArgumentError

    from statusflow.store.database import normalize_url  # SQLAlchemy only when a URL is checked

    try:
        normalize_url(url)
    except (ArgumentError, ValueError) as exc:
        raise StartupError(f"configuration error at {where}: {exc}") from None
