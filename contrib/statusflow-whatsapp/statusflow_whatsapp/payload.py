"""A WhatsApp Cloud API webhook delivery, turned into ``chat.message`` event bodies.

Pure functions: no I/O, no statusflow state. :func:`delivery_events` checks the whole
delivery first (:data:`DELIVERY_SCHEMA`, then each sender's phone), so that a malformed
one raises :class:`Malformed` before any of its messages is posted.

A delivery, as Meta documents it (``field`` ``messages``)::

    {"object": "whatsapp_business_account",
     "entry": [{"id": "<WABA id>", "changes": [{"field": "messages", "value": {
         "messaging_product": "whatsapp",
         "metadata": {"display_phone_number": "15550783881", "phone_number_id": "1065..."},
         "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}],
         "messages": [{"from": "16505551234", "id": "wamid.HBgL...", "timestamp": "1749416383",
                       "type": "text", "text": {"body": "Does it come in another color?"}}]
     }}]}]}

Message status updates (``value.statuses``: sent, delivered, read, failed) and changes of
other fields (``account_update``, ``message_template_status_update``...) post nothing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import phonenumbers
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from statusflow import JSON, format_timestamp

OBJECT = "whatsapp_business_account"
MESSAGES_FIELD = "messages"
EVENT_TYPE = "chat.message"
ID_PREFIX = "whatsapp:"

MEDIA_TYPES = frozenset({"image", "video", "audio", "document", "sticker"})
"""Message types whose content is a file: their text is ``[type] caption``."""
CONTENT_KEYS = (
    *("text", "image", "video", "audio", "document", "sticker", "interactive"),
    *("button", "location", "contacts", "reaction", "order", "system"),
)
"""Where a message without a ``type`` (Meta always sends one) finds it: the first of
these keys it has."""

LATEST_TIMESTAMP_AHEAD = 300 * 86400
"""A message ``timestamp`` further ahead of this server's clock than this is left out of
the event (statusflow refuses an ``occurred_at`` a year ahead)."""

_WA_ID = {"type": "string", "pattern": "^[+]?[0-9]{1,15}$"}
"""A WhatsApp id: the phone's digits (a leading ``+``, which Meta does not send, is let by)."""
_NO_NUL = "^[^\\x00]*$"
"""Strings copied into the event as they are: statusflow cannot store U+0000."""

_MESSAGE: dict[str, JSON] = {
    "type": "object",
    "required": ["id", "from"],
    "properties": {
        # "whatsapp:" + id is the event's id, at most 200 characters
        "id": {
            "type": "string",
            "minLength": 1,
            "maxLength": 200 - len(ID_PREFIX),
            "pattern": _NO_NUL,
        },
        "from": _WA_ID,
        "type": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": _NO_NUL},
        "timestamp": {"type": "string"},
    },
    "if": {"required": ["type"], "properties": {"type": {"const": "text"}}},
    "then": {
        "required": ["text"],
        "properties": {
            "text": {
                "type": "object",
                "required": ["body"],
                "properties": {"body": {"type": "string"}},
            }
        },
    },
}

_VALUE: dict[str, JSON] = {
    "type": "object",
    "properties": {
        "metadata": {
            "type": "object",
            "properties": {
                "phone_number_id": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 200,
                    "pattern": _NO_NUL,
                },
            },
        },
        "contacts": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "wa_id": _WA_ID,
                    "profile": {"type": "object", "properties": {"name": {"type": "string"}}},
                },
            },
        },
        "messages": {"type": "array", "items": _MESSAGE},
        "statuses": {"type": "array"},
    },
}

_CHANGE: dict[str, JSON] = {
    "type": "object",
    "properties": {"field": {"type": "string"}},
    # the value of the messages field (the default: Meta always sends a field)
    "if": {"properties": {"field": {"const": MESSAGES_FIELD}}},
    "then": {"required": ["value"], "properties": {"value": _VALUE}},
}

DELIVERY_SCHEMA: dict[str, JSON] = {
    "type": "object",
    # a whatsapp_business_account delivery (the default: Meta always sends an object)
    "if": {"properties": {"object": {"const": OBJECT}}},
    "then": {
        "required": ["entry"],
        "properties": {
            "entry": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["changes"],
                    "properties": {"changes": {"type": "array", "items": _CHANGE}},
                },
            },
        },
    },
}
"""The parts of a delivery this plugin reads, as JSON Schema (draft 2020-12); anything
else Meta sends is allowed and left alone."""

_VALIDATOR = Draft202012Validator(DELIVERY_SCHEMA)


class Malformed(ValueError):
    """The delivery is not shaped as the Cloud API's: ``path`` says where."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass(slots=True)
class Delivery:
    """What a delivery holds for statusflow: an event body per message, in order, and
    why the rest posts nothing."""

    events: list[dict[str, JSON]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def _where(error: ValidationError) -> str:
    """The JSON Pointer of what is wrong: for a missing property, the property's."""
    parts = [str(part) for part in error.absolute_path]
    required = error.validator_value if error.validator == "required" else None
    if isinstance(required, list) and isinstance(error.instance, Mapping):
        parts += [name for name in required if name not in error.instance][:1]
    return "/" + "/".join(parts)


def _clean(value: object) -> str | None:
    """A non-empty string from the payload, without NUL characters (which statusflow
    cannot store), or ``None``."""
    if not isinstance(value, str):
        return None
    value = value.replace("\x00", "")
    return value or None


def message_text(message: Mapping[str, Any]) -> str:
    """The text of a message: the body of a text message, ``[type] caption`` for media,
    the chosen reply of a button or list, and ``[type] ...`` with what is readable for the
    other types (``[location] Name, address``, ``[reaction] 👍``...)."""
    kind = message_type(message)
    content = message.get(kind)
    part = content if isinstance(content, Mapping) else {}
    if kind == "text":
        return _clean(part.get("body")) or ""
    if kind in MEDIA_TYPES:
        detail = _clean(part.get("caption")) or _clean(part.get("filename"))
    elif kind == "interactive":
        reply = part.get(str(part.get("type")))
        reply = reply if isinstance(reply, Mapping) else {}
        return _clean(reply.get("title")) or _clean(reply.get("body")) or "[interactive]"
    elif kind == "button":
        return _clean(part.get("text")) or _clean(part.get("payload")) or "[button]"
    elif kind == "system":
        detail = _clean(part.get("body"))
    elif kind == "location":
        words = [_clean(part.get("name")), _clean(part.get("address"))]
        detail = ", ".join(w for w in words if w) or None
        where = [part.get("latitude"), part.get("longitude")]
        if detail is None and all(_is_number(w) for w in where):
            detail = f"{where[0]}, {where[1]}"
    elif kind == "contacts" and isinstance(content, list):
        names = [c.get("name") for c in content if isinstance(c, Mapping)]
        formatted = [_clean(n.get("formatted_name")) for n in names if isinstance(n, Mapping)]
        detail = ", ".join(n for n in formatted if n) or None
    else:  # reaction, order and whatever comes next
        detail = _clean(part.get("emoji")) or _clean(part.get("text"))
    return f"[{kind}] {detail}" if detail else f"[{kind}]"


def message_type(message: Mapping[str, Any]) -> str:
    """The message's ``type``; without one, the first of :data:`CONTENT_KEYS` it has,
    else ``"unknown"``."""
    kind = message.get("type")
    if isinstance(kind, str):
        return kind
    return next((key for key in CONTENT_KEYS if key in message), "unknown")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _occurred_at(message: Mapping[str, Any]) -> str | None:
    """The message's ``timestamp`` (Unix seconds, as a string) in statusflow's form;
    ``None`` when it is missing, not that, or far ahead."""
    stamp = message.get("timestamp")
    if not isinstance(stamp, str) or not (stamp.isascii() and stamp.isdigit()) or len(stamp) > 12:
        return None
    seconds = int(stamp)
    if seconds > time.time() + LATEST_TIMESTAMP_AHEAD:
        return None
    return format_timestamp(datetime.fromtimestamp(seconds, UTC))


def _sender(value: Mapping[str, Any], message: Mapping[str, Any]) -> tuple[str, str | None]:
    """The sender's WhatsApp id and profile name.

    The ``contacts`` entry whose ``wa_id`` is the message's ``from``; else, when the
    change has one contact and all its messages come from one sender, that contact (its
    ``wa_id`` may be written differently from ``from``, e.g. for numbers in Brazil);
    else ``from`` with no name.
    """
    sender = _wa_id(message["from"])
    contacts = [c for c in value.get("contacts", ()) if isinstance(c.get("wa_id"), str)]
    chosen = next((c for c in contacts if _wa_id(c["wa_id"]) == sender), None)
    if chosen is None and len(contacts) == 1:
        senders = {_wa_id(m["from"]) for m in value.get("messages", ())}
        chosen = contacts[0] if len(senders) == 1 else None
    if chosen is None:
        return sender, None
    profile = chosen.get("profile")
    name = _clean(profile.get("name")) if isinstance(profile, Mapping) else None
    return _wa_id(chosen["wa_id"]), name


def _wa_id(value: str) -> str:
    return value.removeprefix("+")


def _phone(wa_id: str, path: str) -> str:
    phone = "+" + wa_id
    if not (wa_id.isascii() and wa_id.isdigit()):  # the schema's "$" lets a final "\n" by
        raise Malformed(path, f"the sender {wa_id!r} is not a phone number")
    try:
        possible = phonenumbers.is_possible_number(phonenumbers.parse(phone, None))
    except phonenumbers.NumberParseException:
        possible = False
    if not possible:
        raise Malformed(path, f"the sender {wa_id!r} is not a phone number")
    return phone


def message_event(
    value: Mapping[str, Any], message: Mapping[str, Any], path: str
) -> dict[str, JSON]:
    """The ``chat.message`` event body of one message of a change's ``value``."""
    wa_id, name = _sender(value, message)
    kind = message_type(message)
    data: dict[str, JSON] = {
        "dialog_id": wa_id,
        "text": message_text(message),
        "message_type": kind,
    }
    metadata = value.get("metadata")
    if isinstance(metadata, Mapping) and isinstance(metadata.get("phone_number_id"), str):
        data["channel_id"] = metadata["phone_number_id"]
    content = message.get(kind)
    caption = _clean(content.get("caption")) if isinstance(content, Mapping) else None
    if caption is not None:
        data["caption"] = caption
    if name is not None:
        data["profile_name"] = name
    body: dict[str, JSON] = {
        "id": ID_PREFIX + str(message["id"]),
        "type": EVENT_TYPE,
        "contact": {"phone": _phone(wa_id, path)},
        "data": data,
    }
    occurred_at = _occurred_at(message)
    if occurred_at is not None:
        body["occurred_at"] = occurred_at
    return body


def delivery_events(delivery: Any) -> Delivery:
    """The event bodies of a delivery's messages, and what it holds that posts nothing.

    :raises Malformed: the delivery is not shaped as the Cloud API's (nothing of it is
        to be posted then).
    """
    error = best_match(_VALIDATOR.iter_errors(delivery))
    if error is not None:
        raise Malformed(_where(error), error.message[:300])
    result = Delivery()
    if delivery.get("object", OBJECT) != OBJECT:
        result.ignored.append(f"object {delivery['object']!r} is not {OBJECT!r}")
        return result
    for e, entry in enumerate(delivery["entry"]):
        for c, change in enumerate(entry["changes"]):
            if change.get("field", MESSAGES_FIELD) != MESSAGES_FIELD:
                result.ignored.append(f"field {change['field']!r} posts nothing")
                continue
            value = change["value"]
            statuses = value.get("statuses") or ()
            if statuses:
                result.ignored.append(f"{len(statuses)} status update(s) post nothing")
            for m, message in enumerate(value.get("messages") or ()):
                path = f"/entry/{e}/changes/{c}/value/messages/{m}/from"
                result.events.append(message_event(value, message, path))
    return result
