"""The one form of every stored time: ISO-8601 in UTC, ``2026-11-27T10:00:00.000000Z``.

Fixed width (four-digit year, six-digit fraction, ``Z``), so that stored times sort and
compare as strings. Plugins import these from :mod:`statusflow` to write their own times
the kernel's way (``utc_now()``, ``format_timestamp(moment)``) and read them back
(``parse_timestamp(text)``).
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from functools import lru_cache

_STORED = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", re.ASCII)


@lru_cache(maxsize=1)
def _date_and_time(whole_second: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` of a Unix time (formatted once a second: cached)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole_second))


def utc_now() -> str:
    """Now, in the stored form: ``"2026-11-27T10:00:00.123456Z"``."""
    now = time.time()
    whole = int(now)
    return f"{_date_and_time(whole)}.{int((now - whole) * 1_000_000):06d}Z"


def format_timestamp(moment: datetime) -> str:
    """``moment`` in the stored form, converted to UTC.

    :raises ValueError: ``moment`` has no time zone (a naive time could be any).
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"time {moment.isoformat()!r} has no time zone")
    # isoformat is several times faster than strftime, and keeps years before 1000 at
    # four digits
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_timestamp(value: str) -> datetime:
    """An ISO-8601 time with a time zone (the stored form, or any other such as
    ``"2026-11-27T12:00:00+02:00"``) as a time-zone-aware ``datetime`` in UTC.

    :raises ValueError: ``value`` is not such a time, or has no time zone.
    :raises OverflowError: its time in UTC falls outside the years 1 to 9999.
    """
    if _STORED.fullmatch(value):
        return datetime.fromisoformat(value[:-1]).replace(tzinfo=UTC)
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"time {value!r} has no time zone")
    return parsed.astimezone(UTC)


def normalize_timestamp(value: str) -> str:
    """An ISO-8601 time with a time zone in the stored form (``value`` itself when it is
    already in it); raises as :func:`parse_timestamp` does."""
    if _STORED.fullmatch(value):
        datetime.fromisoformat(value[:-1])  # a real time: not month 13, not second 61
        return value
    return format_timestamp(parse_timestamp(value))
