"""structlog set-up: key-value events, one line each, on standard error."""

from __future__ import annotations

import logging
import os
import sys

import structlog

FIRST_KEYS = ("timestamp", "level", "event")


def render_key_values(_logger: object, _name: str, event_dict: structlog.typing.EventDict) -> str:
    """``key=repr(value)`` pairs: timestamp, level and event first, then the rest sorted.

    What ``structlog.processors.KeyValueRenderer(key_order=..., sort_keys=True)`` writes,
    in a third of its time (a line per move is on the event path).
    """
    parts = [f"{key}={event_dict.pop(key)!r}" for key in FIRST_KEYS if key in event_dict]
    parts.extend([f"{key}={value!r}" for key, value in sorted(event_dict.items())])
    return " ".join(parts)


def configure_logging(level: str | None = None, json: bool | None = None) -> None:
    """Route structlog (and the standard library's logging) to one key-value stream.

    ``STATUSFLOW_LOG_LEVEL`` (default ``info``) and ``STATUSFLOW_LOG_FORMAT``
    (``console`` or ``json``, default ``console``) choose level and rendering.
    """
    level_name = (level or os.environ.get("STATUSFLOW_LOG_LEVEL", "info")).upper()
    numeric = getattr(logging, level_name, logging.INFO)
    as_json = json if json is not None else os.environ.get("STATUSFLOW_LOG_FORMAT") == "json"
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if as_json else render_key_values
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(
        level=max(numeric, logging.WARNING), stream=sys.stderr, format="%(name)s %(message)s"
    )
