"""structlog set-up: key-value events, one line each, on standard error."""

from __future__ import annotations

import logging
import os
import sys

import structlog

from statusflow.errors import StartupError
from statusflow.serving.setting_errors import did_you_mean

FIRST_KEYS = ("timestamp", "level", "event")


def render_key_values(_logger: object, _name: str, event_dict: structlog.typing.EventDict) -> str:
    """``key=repr(value)`` pairs: timestamp, level and event first, then the rest sorted.

    What ``structlog.processors.KeyValueRenderer(key_order=..., sort_keys=True)`` writes,
    in a third of its time (a line per move is on the event path).
    """
    parts = [f"{key}={event_dict.pop(key)!r}" for key in FIRST_KEYS if key in event_dict]
    parts.extend([f"{key}={value!r}" for key, value in sorted(event_dict.items())])
    return " ".join(parts)


LEVELS = ("debug", "info", "warning", "error", "critical")
FORMATS = ("console", "json")


def log_options(level: str | None = None, json: bool | None = None) -> tuple[int, bool]:
    """The level (a ``logging`` number) and whether to render JSON: the arguments, else
    ``STATUSFLOW_LOG_LEVEL`` (default ``info``) and ``STATUSFLOW_LOG_FORMAT`` (``console``
    or ``json``, default ``console``).

    :raises StartupError: a level or format that is not one of those.
    """
    level_name = (level or os.environ.get("STATUSFLOW_LOG_LEVEL") or "info").strip().lower()
    if level_name not in LEVELS:
        raise StartupError(_unknown("STATUSFLOW_LOG_LEVEL", level_name, LEVELS))
    if json is None:
        form = (os.environ.get("STATUSFLOW_LOG_FORMAT") or "console").strip().lower()
        if form not in FORMATS:
            raise StartupError(_unknown("STATUSFLOW_LOG_FORMAT", form, FORMATS))
        json = form == "json"
    return getattr(logging, level_name.upper()), json


def _unknown(variable: str, value: str, known: tuple[str, ...]) -> str:
    hint = did_you_mean(value, known)
    return f"{variable} {value!r} is not one of {', '.join(known)}{hint}"


def configure_logging(level: str | None = None, json: bool | None = None) -> None:
    """Route structlog (and the standard library's logging) to one key-value stream.

    :raises StartupError: a bad ``STATUSFLOW_LOG_LEVEL`` or ``STATUSFLOW_LOG_FORMAT``
        (nothing is changed then: see :func:`log_options`).
    """
    numeric, as_json = log_options(level, json)
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
