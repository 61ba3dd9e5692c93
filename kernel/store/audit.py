"""The audit log's entries: secrets redacted before they are stored, and one log line
per entry once its transaction committed (never its before and after)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

log = structlog.get_logger("statusflow.audit")

REDACTED = "[redacted]"
SECRET_NAMES = re.compile(
    r"secret|token|password|passwd|api_?key|authorization|private_?key|webhook_url", re.I
)
"""Keys whose values are never stored in the audit log, at any depth (``secret``,
``signing_secrets``, ``token``, ``webhook_url`` (it holds a trigger's secret), ...)."""


def redact(value: Any) -> Any:
    """``value`` with the value of every key named like a secret replaced by
    ``"[redacted]"`` (``true``, ``false`` and ``null`` say nothing: they stay)."""
    if isinstance(value, Mapping):
        return {
            key: REDACTED
            if SECRET_NAMES.search(str(key)) and not (item is None or isinstance(item, bool))
            else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    return value


def log_committed(entries: Sequence[Mapping[str, Any]]) -> None:
    """One ``audit`` log line per committed entry: who did what to which resource."""
    for entry in entries:
        log.info(
            "audit",
            audit_id=entry["id"],
            key_name=entry["key_name"],
            action=entry["action"],
            kind=entry["kind"],
            resource_id=entry["resource_id"],
        )
