"""Contact identifiers: normalising phones (E.164) and emails, and an order's index rows."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

import phonenumbers


@lru_cache(maxsize=65536)
def normalize_phone(raw: str, region: str) -> str:
    """``raw`` in E.164 form, parsed with ``region`` when it has no country code.

    :raises ValueError: the phone cannot be parsed or cannot be a number.
    """
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"phone {raw!r} cannot be parsed: {exc}") from None
    if not phonenumbers.is_possible_number(number):
        raise ValueError(f"phone {raw!r} is not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(raw: str) -> str:
    """``raw`` trimmed and lower-cased: emails compare case-insensitively."""
    value = raw.strip().lower()
    if "@" not in value:
        raise ValueError(f"email {raw!r} has no '@'")
    return value


def order_identifiers(doc: Mapping[str, Any], region: str) -> Iterator[tuple[str, str]]:
    """The ``(kind, value)`` pairs under which an order is found by contact fan-out.

    Kinds: ``phone``, ``email``, ``contact_id`` (the contact's or company's ``id``) and
    ``visitor_id``. Raises :class:`ValueError` for an unparseable phone or email.
    """
    seen: set[tuple[str, str]] = set()
    for party_key in ("contact", "company"):
        party = doc.get(party_key) or {}
        pairs: list[tuple[str, str]] = []
        if party.get("id") is not None:
            pairs.append(("contact_id", str(party["id"])))
        pairs += [("phone", normalize_phone(p, region)) for p in party.get("phones") or ()]
        pairs += [("email", normalize_email(e)) for e in party.get("emails") or ()]
        for pair in pairs:
            if pair not in seen:
                seen.add(pair)
                yield pair
    for visitor in doc.get("visitor_ids") or ():
        pair = ("visitor_id", str(visitor))
        if pair not in seen:
            seen.add(pair)
            yield pair


def event_identifiers(contact: Mapping[str, Any], region: str) -> list[tuple[str, str]]:
    """The ``(kind, value)`` pairs an event's ``contact`` is looked up by."""
    pairs = []
    for kind, value in contact.items():
        if value is None:
            continue
        if kind == "phone":
            pairs.append((kind, normalize_phone(str(value), region)))
        elif kind == "email":
            pairs.append((kind, normalize_email(str(value))))
        else:
            pairs.append((kind, str(value)))
    return pairs
