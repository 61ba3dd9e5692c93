"""ISO-8601 durations of a fixed length: ``PT30S``, ``PT10M``, ``P3D``, ``P1W``, ``P1DT12H``.

A strict parser of the part of ISO 8601 that has one length whatever the date: weeks,
days (``P1D`` is 24 hours), hours, minutes and seconds (a fraction on the last unit
only, as the standard allows). Years and months are refused: their length depends on
the calendar. ``isodate`` was tried first: it accepts ``PT`` and ``P1DT`` (no digits
after the designator) and reads ``P1M`` as a calendar month, where a scheduler needs a
definite number of seconds, so this small parser is stricter instead.
"""

from __future__ import annotations

import re
from datetime import timedelta

MAX_DURATION = timedelta(days=3660)
"""The longest duration accepted: about ten years."""

_NUMBER = r"(\d+(?:[.,]\d+)?)"
_DURATION = re.compile(
    rf"P(?:{_NUMBER}W)?(?:{_NUMBER}D)?(?:T(?:{_NUMBER}H)?(?:{_NUMBER}M)?(?:{_NUMBER}S)?)?",
    re.ASCII,
)
_UNITS = (7 * 86400, 86400, 3600, 60, 1)


def parse_duration(text: str) -> timedelta:
    """A duration such as ``"PT30S"``, ``"P3D"`` or ``"P1DT12H"`` as a ``timedelta``
    (``P1D`` is 24 hours).

    :raises ValueError: ``text`` is not such a duration (the message says why): years
        or months, a fraction on a unit other than the last, nothing after ``P`` or
        ``T``, or more than :data:`MAX_DURATION`.
    """
    match = _DURATION.fullmatch(text) if isinstance(text, str) else None
    if match is None or text in ("P", "PT") or text.endswith("T"):
        calendar = isinstance(text, str) and re.fullmatch(r"P(\d+Y)?(\d+M)?(\d+D)?(T.*)?", text)
        if calendar and re.search(r"\d+[YM]", text.split("T")[0]):
            raise ValueError(
                f"duration {text!r} has years or months, whose length depends on the "
                "calendar: use weeks or days (P30D)"
            )
        raise ValueError(
            f"{text!r} is not an ISO-8601 duration such as PT30S, PT10M, P3D or P1DT12H"
        )
    given = [(value, unit) for value, unit in zip(match.groups(), _UNITS, strict=True) if value]
    if any(("." in v or "," in v) for v, _ in given[:-1]):
        raise ValueError(f"duration {text!r}: only its last unit may have a fraction")
    seconds = sum(float(value.replace(",", ".")) * unit for value, unit in given)
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"duration {text!r} is longer than {MAX_DURATION.days} days")
    return timedelta(seconds=seconds)


__all__ = ["MAX_DURATION", "parse_duration"]
