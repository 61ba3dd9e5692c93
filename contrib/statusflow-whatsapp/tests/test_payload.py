"""The delivery parser on its own: whatever a signed body holds, it either gives event
bodies statusflow accepts as they are, or says where the delivery is malformed (so that
a route never answers 500, and never stores half a delivery)."""

from __future__ import annotations

import contextlib
import copy
import json
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from statusflow_whatsapp.payload import Delivery, Malformed, delivery_events

WAMID = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0Rg"
GOOD: dict[str, Any] = {
    "object": "whatsapp_business_account",
    "entry": [
        {
            "id": "102290129340398",
            "changes": [
                {
                    "field": "messages",
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {
                            "display_phone_number": "15550783881",
                            "phone_number_id": "106540352242922",
                        },
                        "contacts": [{"profile": {"name": "Sheena"}, "wa_id": "16505551234"}],
                        "messages": [
                            {
                                "from": "16505551234",
                                "id": WAMID + "A=",
                                "timestamp": "1749416383",
                                "type": "text",
                                "text": {"body": "Does it come in another color?"},
                            },
                            {
                                "from": "16505551234",
                                "id": WAMID + "B=",
                                "timestamp": "1749416390",
                                "type": "location",
                                "location": {"latitude": 38.9, "longitude": -77.03},
                            },
                        ],
                    },
                }
            ],
        }
    ],
}

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["16505551234", "12", "16505551234\n", "text", "\x00", "²", "9" * 5000]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(["id", "from", "type", "text", "body", "wa_id", "timestamp", "x"]),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)


def _places(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into ``value``, itself included."""
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _places(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _places(item, (*path, index))
    return found


PLACES = _places(GOOD)


def _replace(document: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    changed = copy.deepcopy(document)
    parent = changed
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = new
    return changed


def _check_event(event: dict[str, Any]) -> None:
    """What statusflow's intake asks of an event, as this plugin builds them."""
    assert event["type"] == "chat.message"
    assert 0 < len(event["id"]) <= 200 and event["id"].startswith("whatsapp:")
    assert re.fullmatch(r"\+[0-9]{2,15}", event["contact"]["phone"])
    assert "\\u0000" not in json.dumps(event)
    data = event["data"]
    assert isinstance(data.get("channel_id", ""), str) and isinstance(data["text"], str)
    assert isinstance(data["message_type"], str)
    assert data["dialog_id"] == event["contact"]["phone"][1:]


def test_a_documented_delivery():
    delivery = delivery_events(GOOD)
    assert delivery.ignored == []
    assert [e["data"]["text"] for e in delivery.events] == [
        "Does it come in another color?",
        "[location] 38.9, -77.03",
    ]
    for event in delivery.events:
        _check_event(event)


@settings(max_examples=300, deadline=None, database=None)
@given(place=st.sampled_from(PLACES), new=JSON_VALUES)
def test_any_change_to_a_delivery_is_parsed_or_malformed(place, new):
    try:
        delivery = delivery_events(_replace(GOOD, place, new))
    except Malformed as exc:
        assert exc.path.startswith("/") and exc.message
        return
    assert isinstance(delivery, Delivery)
    for event in delivery.events:
        _check_event(event)


@settings(max_examples=200, deadline=None, database=None)
@given(body=JSON_VALUES)
def test_any_json_is_parsed_or_malformed(body):
    with contextlib.suppress(Malformed):
        delivery_events(body)
