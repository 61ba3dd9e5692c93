"""An action's delay for people: ``P3D`` reads "after 3 days", none reads "at once", and
the form's number and unit become the ISO-8601 duration the API takes (contract §8)."""

from __future__ import annotations

from statusflow.engine.durations import parse_duration

UNITS = (("minutes", 60), ("hours", 3600), ("days", 86400))
"""The form's units, smallest first, with their seconds."""

_WORDS = ((7 * 86400, "week"), (86400, "day"), (3600, "hour"), (60, "minute"), (1, "second"))


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def delay_words(delay: str | None) -> str:
    """``"at once"``, ``"after 3 days"``, ``"after 1 day 12 hours"`` (or the raw text of
    a duration this version cannot read)."""
    if not delay:
        return "at once"
    try:
        seconds = round(parse_duration(delay).total_seconds())
    except ValueError:
        return f"after {delay}"
    if seconds <= 0:
        return "at once"
    parts = []
    for size, word in _WORDS:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(_plural(count, word))
    return "after " + " ".join(parts)


def split_delay(delay: str | None) -> tuple[str, str]:
    """The form's ``(number, unit)`` for a stored delay: the largest unit that divides it
    (``("", "minutes")`` for none; seconds that fit no unit become a fraction of minutes)."""
    if not delay:
        return "", "minutes"
    try:
        seconds = parse_duration(delay).total_seconds()
    except ValueError:
        return "", "minutes"
    for unit, size in reversed(UNITS):
        if seconds % size == 0:
            return str(int(seconds // size)), unit
    return f"{seconds / 60:g}", "minutes"


def join_delay(number: str, unit: str) -> str | None:
    """The ISO-8601 duration of the form's number and unit; ``None`` for an empty or zero
    number (at once). Text that is no number is returned as it is, so that the API's
    rules answer it (a 422 naming the duration)."""
    text = number.strip().replace(",", ".")
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        return text
    if value == 0:
        return None
    sizes = dict(UNITS)
    if unit not in sizes or value < 0:
        return text
    amount = f"{value:g}" if value != int(value) else str(int(value))
    letter = {"minutes": "M", "hours": "H", "days": "D"}[unit]
    return f"P{amount}D" if letter == "D" else f"PT{amount}{letter}"
