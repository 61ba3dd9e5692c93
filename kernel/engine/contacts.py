"""Contact identifiers: normalising phones (E.164) and emails, and an order's index rows."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

import phonenumbers


class IdentifierError(ValueError):
    """A phone or email that cannot be an identifier: ``str()`` says why, for people,
    and ``path`` holds the keys and indexes of the value in the body, when known."""

    def __init__(self, message: str, path: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.path = path

    def at(self, *path: str | int) -> IdentifierError:
        """The same error, found at ``path``."""
        return IdentifierError(self.message, path)


_PARSE_PROBLEMS = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "has no known country code "
    "(write it as +CC..., or set [phones] default_region)",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "is too short to be a phone number",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "is too short to be a phone number",
    phonenumbers.NumberParseException.TOO_LONG: "is too long to be a phone number",
}


@lru_cache(maxsize=65536)
def normalize_phone(raw: str, region: str) -> str:
    """``raw`` in E.164 form, parsed with ``region`` when it has no country code.

    :raises IdentifierError: the phone cannot be parsed or cannot be a number.
    """
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        problem = _PARSE_PROBLEMS.get(exc.error_type, "is not a phone number")
        raise IdentifierError(f"phone {raw[:64]!r} {problem}") from None
    if not phonenumbers.is_possible_number(number):
        raise IdentifierError(f"phone {raw[:64]!r} is not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(raw: str) -> str:
    """``raw`` trimmed and lower-cased: emails compare case-insensitively."""
    value = raw.strip().lower()
    if "@" not in value:
        raise IdentifierError(f"email {raw[:320]!r} is not an email address: it has no '@'")
    return value


def order_identifiers(doc: Mapping[str, Any], region: str) -> Iterator[tuple[str, str]]:
    """The ``(kind, value)`` pairs under which an order is found by contact fan-out.

    Kinds: ``phone``, ``email``, ``contact_id`` (the contact's or company's ``id``) and
    ``visitor_id``. Raises :class:`IdentifierError` (at the value's path in the order)
    for an unparseable phone or email.
    """
    seen: set[tuple[str, str]] = set()
    for party_key in ("contact", "company"):
        party = doc.get(party_key) or {}
        pairs: list[tuple[str, str]] = []
        if party.get("id") is not None:
            pairs.append(("contact_id", str(party["id"])))
        for kind, key, normalize in (
            ("phone", "phones", lambda raw: normalize_phone(raw, region)),
            ("email", "emails", normalize_email),
        ):
            for index, raw in enumerate(party.get(key) or ()):
                try:
                    pairs.append((kind, normalize(raw)))
                except IdentifierError as exc:
                    raise exc.at(party_key, key, index) from None
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
    """The ``(kind, value)`` pairs an event's ``contact`` is looked up by; an
    :class:`IdentifierError` at ``("contact", kind)`` for a bad phone or email."""
    pairs = []
    for kind, value in contact.items():
        if value is None:
            continue
        try:
            if kind == "phone":
                pairs.append((kind, normalize_phone(str(value), region)))
            elif kind == "email":
                pairs.append((kind, normalize_email(str(value))))
            else:
                pairs.append((kind, str(value)))
        except IdentifierError as exc:
            raise exc.at("contact", kind) from None
    return pairs
