"""The ``chat`` plugin: an order moves when its client writes in a chat.

One event type, ``chat.message`` (data: ``channel_id``, ``dialog_id``, ``text``), and
two trigger types listening to it:

* ``chat.first_message``: only the first stored message of its dialog. A dialog is the
  message's ``dialog_id``; without one, its ``channel_id`` together with the contact
  identifiers as sent. Messages that resolved to no order, and messages from before the
  trigger existed, count. Optional setting ``channel_id``.
* ``chat.message``: every message. Optional settings ``channel_id`` and ``text`` (a
  case-insensitive substring of the message's text).

Dialogs already seen are kept in the kernel's state store (namespace ``chat.dialog``),
so they survive restarts and are shared by every server process; a dry run reads them
but records nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from statusflow import Event, EventType, StateStore, TriggerType, hookimpl
from statusflow.plugins._matchers import (
    MAX_TEXT_LENGTH,
    all_of,
    canonical_json,
    contains,
    data_schema,
    equals,
    fact_is_true,
    id_field,
    settings_schema,
    show,
    state_key,
    string_field,
    string_setting,
)

CHAT_MESSAGE = "chat.message"
FIRST_MESSAGE = "chat.first_message"
FIRST_FACT = "chat.first_message"
NAMESPACE = "chat.dialog"

DATA_SCHEMA = data_schema(
    channel_id=id_field("the chat channel (a messenger, a widget...)"),
    dialog_id=id_field("the conversation; messages of one dialog share it"),
    text=string_field("the message's text"),
)

CHANNEL_SETTING = string_setting(
    "only messages in this channel (compared with the event's channel_id as a string)"
)

FIRST_SETTINGS_SCHEMA = settings_schema(channel_id=CHANNEL_SETTING)

MESSAGE_SETTINGS_SCHEMA = settings_schema(
    channel_id=CHANNEL_SETTING,
    text=string_setting("only messages whose text contains this, ignoring case", MAX_TEXT_LENGTH),
)


def _present(value: object) -> bool:
    return value is not None and value != ""


def dialog_key(event: Event) -> str:
    """The state key of the message's dialog.

    ``"d:" + dialog_id`` when the message has a ``dialog_id``; otherwise ``"c:"`` and
    the canonical JSON of its channel and contact identifiers (its order id stands in
    for a contact when the message names an order and no contact).
    """
    dialog_id = event.data.get("dialog_id")
    if _present(dialog_id):
        return state_key(f"d:{dialog_id}")
    channel_id = event.data.get("channel_id")
    channel = "" if channel_id is None else str(channel_id)
    who: dict[str, object] = dict(event.contact)
    if not who and event.order_id is not None:
        who = {"order_id": event.order_id}
    return state_key("c:" + canonical_json([channel, who]))


def _not_first(event: Event) -> str:
    if FIRST_FACT not in event.facts:
        return "the message was not inspected, so it is not known to be the first"
    dialog_id = event.data.get("dialog_id")
    if _present(dialog_id):
        return f"not the first message of dialog_id {show(dialog_id)}"
    return "not the first message of this channel_id and contact"


@hookimpl
def register_event_types(register: Callable[[EventType], None]) -> None:
    register(EventType(CHAT_MESSAGE, "Chat message", DATA_SCHEMA))


@hookimpl
def register_trigger_types(register: Callable[[TriggerType], None]) -> None:
    register(
        TriggerType(
            FIRST_MESSAGE,
            "First chat message of a dialog",
            (CHAT_MESSAGE,),
            FIRST_SETTINGS_SCHEMA,
            all_of(equals("channel_id"), fact_is_true(FIRST_FACT, _not_first)),
        )
    )
    register(
        TriggerType(
            CHAT_MESSAGE,
            "Chat message",
            (CHAT_MESSAGE,),
            MESSAGE_SETTINGS_SCHEMA,
            all_of(equals("channel_id"), contains("text")),
        )
    )


@hookimpl
async def inspect_event(event: Event, state: StateStore) -> None:
    """Note in ``facts["chat.first_message"]`` whether this message opens its dialog."""
    if event.type != CHAT_MESSAGE:
        return
    event.facts[FIRST_FACT] = await state.claim(NAMESPACE, dialog_key(event))
