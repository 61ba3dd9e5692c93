"""Contract §3: every trigger type of every built-in plugin, from an HTTP request to a move.

One table, ``CASES``, holds the 22 trigger types. Each case is a trigger (with settings
where the type has optional settings) and a list of steps; each step is one event for an
order of its own, sent the way the contract lets it in (``POST /api/events``, the
trigger's ``webhook_url``, the email open pixel or a tracked link), and either moves the
order to the trigger's status or does not, with a ``skipped`` trace entry that says why.
Every case runs as a subtest on one app per database (a fresh app costs more than a
case); a case's trigger is deleted after it, so each case sees only its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from helpers import (
    Api,
    assert_trace,
    event,
    event_ids_in_timeline,
    move,
    path_of,
    tracking_links,
)

from statusflow.serving.plugin_catalog import list_plugins

# type: (plugin, event types it listens to, its optional settings), as contract §3 lists them
TYPES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "responsible.changed": ("responsible", ("responsible.changed",), ("responsible_id",)),
    "email.received": ("email", ("email.received",), ()),
    "email.sent": ("email", ("email.sent",), ()),
    "email.viewed": ("email", ("email.viewed",), ()),
    "email.link_clicked": ("email", ("email.link_clicked",), ("url",)),
    "call.incoming": ("calls", ("call.incoming",), ("line",)),
    "call.missed": ("calls", ("call.missed",), ("line",)),
    "form.submitted": ("forms", ("form.submitted",), ("form_id",)),
    "form.callback": ("forms", ("form.callback",), ("form_id",)),
    "payment.received": ("payment", ("payment.received",), ()),
    "shipment.approved": ("shipment", ("shipment.approved",), ()),
    "shipment.tracking_number_added": (
        "shipment",
        ("shipment.tracking_number_added",),
        ("delivery_id",),
    ),
    "shipment.shipped": ("shipment", ("shipment.shipped",), ()),
    "shipment.updated": ("shipment", ("shipment.updated",), ()),
    "order.canceled": ("orders", ("order.canceled",), ()),
    "webhook.called": ("webhook", ("webhook.called",), ()),
    "visit.started": ("visits", ("visit",), ("url",)),
    "visit.returned": ("visits", ("visit",), ()),
    "chat.first_message": ("chat", ("chat.message",), ("channel_id",)),
    "chat.message": ("chat", ("chat.message",), ("channel_id", "text")),
    "document.created": ("documents", ("document.created",), ("template_id",)),
    "document.opened": ("documents", ("document.opened",), ("template_id",)),
}
PLUGINS = {plugin for plugin, _events, _settings in TYPES.values()}
# every event type a client may post: what the plugins listen to, webhook.called excepted
PUBLIC_EVENT_TYPES = sorted(
    {e for _p, events, _s in TYPES.values() for e in events} - {"webhook.called"}
)


@pytest.fixture
def database_url(reused_database_url: str) -> str:
    """SQLite, then PostgreSQL: one database for the module, emptied before each test."""
    return reused_database_url


@pytest.fixture
async def api(make_client: Any) -> Api:
    """The API with every installed plugin of statusflow's own (``make test`` also installs
    the contrib distributions, whose types would add to the lists checked here)."""
    third_party = tuple(p.name for p in list_plugins() if p.distribution != "statusflow")
    return Api(await make_client(disable=third_party))


# --- the table ---------------------------------------------------------------------------------

EVENT, WEBHOOK, PIXEL, CLICK = "event", "webhook", "pixel", "click"
NOT_MATCHING = "settings do not match"


@dataclass(frozen=True)
class Step:
    """One event for a fresh order in ``N``.

    :param via: ``EVENT`` (``POST /api/events``), ``WEBHOOK`` (the trigger's URL),
        ``PIXEL`` (the open pixel of a tracking link) or ``CLICK`` (a tracked link to
        ``data["url"]``).
    :param skipped: ``None`` when the event moves the order; else the fragment of the
        trace's ``skipped`` reason that says why it does not.
    """

    type: str
    data: dict[str, Any] = field(default_factory=dict)
    contact: dict[str, Any] | None = None
    via: str = EVENT
    skipped: str | None = None


def hit(type: str, via: str = EVENT, contact: dict[str, Any] | None = None, **data: Any) -> Step:
    """An event that moves its order."""
    return Step(type, data, contact, via)


def miss(
    type: str, why: str, via: str = EVENT, contact: dict[str, Any] | None = None, **data: Any
) -> Step:
    """An event that breaks the trigger's settings: no move, ``why`` in the trace."""
    return Step(type, data, contact, via, why)


@dataclass(frozen=True)
class Case:
    settings: dict[str, Any]
    steps: tuple[Step, ...]
    status: str = "P"


SHOP = "https://shop.example"
CASES: dict[str, Case] = {
    "responsible.changed": Case(
        {"responsible_id": 7},
        (
            hit("responsible.changed", responsible_id="7", previous_responsible_id=None),
            miss(
                "responsible.changed", "responsible_id is '8', trigger wants '7'", responsible_id=8
            ),
            miss(
                "responsible.changed",
                "event has no responsible_id, trigger wants '7'",
                responsible_id=None,
            ),
        ),
    ),
    "email.received": Case({}, (hit("email.received", message_id="<m1@shop.example>"),)),
    "email.sent": Case({}, (hit("email.sent", message_id="<m2@shop.example>"),)),
    "email.viewed": Case({}, (hit("email.viewed"), hit("email.viewed", via=PIXEL))),
    "email.link_clicked": Case(
        {"url": f"{SHOP}/pay"},
        (
            hit("email.link_clicked", url=f"{SHOP}/pay/1001?utm=mail"),
            miss(
                "email.link_clicked",
                f"url '{SHOP}/cart' does not start with '{SHOP}/pay'",
                url=f"{SHOP}/cart",
            ),
            miss(
                "email.link_clicked",
                f"event has no url, trigger wants one starting with '{SHOP}/pay'",
                message_id="<m3@shop.example>",
            ),
            hit("email.link_clicked", via=CLICK, url=f"{SHOP}/payment?order=1001&x=1"),
            miss(
                "email.link_clicked",
                f"url 'https://other.example/pay' does not start with '{SHOP}/pay'",
                via=CLICK,
                url="https://other.example/pay",
            ),
        ),
    ),
    "call.incoming": Case(
        {"line": "2"},
        (
            hit("call.incoming", line=2),
            hit("call.incoming", line="2"),
            miss("call.incoming", "line is '1', trigger wants '2'", line="1"),
            miss("call.incoming", "event has no line, trigger wants '2'"),
        ),
    ),
    "call.missed": Case(
        {"line": "sales"},
        (
            hit("call.missed", line="sales"),
            miss("call.missed", "line is 'Sales', trigger wants 'sales'", line="Sales"),
        ),
    ),
    "form.submitted": Case(
        {"form_id": "contact"},
        (
            hit("form.submitted", form_id="contact"),
            miss("form.submitted", "form_id is 'order', trigger wants 'contact'", form_id="order"),
        ),
    ),
    "form.callback": Case(
        {"form_id": "17"},
        (
            hit("form.callback", form_id=17),
            miss("form.callback", "form_id is '18', trigger wants '17'", form_id=18),
        ),
    ),
    "payment.received": Case(
        {}, (hit("payment.received", amount=10.5, currency="USD", method="card"),)
    ),
    "shipment.approved": Case({}, (hit("shipment.approved"),)),
    "shipment.tracking_number_added": Case(
        {"delivery_id": "ups"},
        (
            hit("shipment.tracking_number_added", delivery_id="ups", tracking_number="1Z999"),
            miss(
                "shipment.tracking_number_added",
                "delivery_id is 'dhl', trigger wants 'ups'",
                delivery_id="dhl",
                tracking_number="JD014",
            ),
            miss(
                "shipment.tracking_number_added",
                "event has no delivery_id, trigger wants 'ups'",
                tracking_number="1Z998",
            ),
        ),
    ),
    "shipment.shipped": Case({}, (hit("shipment.shipped", tracking_number="1Z999"),)),
    "shipment.updated": Case({}, (hit("shipment.updated", state="in transit"),)),
    "order.canceled": Case({}, (hit("order.canceled", reason="client asked"),), status="D"),
    "webhook.called": Case({}, (hit("webhook.called", via=WEBHOOK),)),
    "visit.started": Case(
        {"url": f"{SHOP}/checkout"},
        (
            hit("visit", contact={"visitor_id": "vs-1"}, url=f"{SHOP}/checkout/step-1"),
            miss(
                "visit",
                f"url '{SHOP}/' does not start with '{SHOP}/checkout'",
                contact={"visitor_id": "vs-1"},
                url=f"{SHOP}/",
            ),
        ),
    ),
    "visit.returned": Case(
        {},
        (
            miss(
                "visit",
                "visitor_id 'vr-1' is visiting for the first time",
                contact={"visitor_id": "vr-1"},
            ),
            hit("visit", contact={"visitor_id": "vr-1"}, url=f"{SHOP}/"),
            miss("visit", "event has no visitor_id, so it cannot be a returning visit"),
        ),
    ),
    "chat.first_message": Case(
        {"channel_id": "tg"},
        (
            hit("chat.message", channel_id="tg", dialog_id="fm-1", text="hi"),
            miss(
                "chat.message",
                "not the first message of dialog_id 'fm-1'",
                channel_id="tg",
                dialog_id="fm-1",
                text="hi again",
            ),
            miss(
                "chat.message",
                "channel_id is 'wa', trigger wants 'tg'",
                channel_id="wa",
                dialog_id="fm-2",
                text="hi",
            ),
        ),
    ),
    "chat.message": Case(
        {"channel_id": "tg", "text": "refund"},
        (
            hit("chat.message", channel_id="tg", dialog_id="cm-1", text="I want a REFUND, please"),
            hit("chat.message", channel_id="tg", dialog_id="cm-1", text="refund!"),
            miss(
                "chat.message",
                "text 'hello' does not contain 'refund' (ignoring case)",
                channel_id="tg",
                text="hello",
            ),
            miss(
                "chat.message",
                "channel_id is 'wa', trigger wants 'tg'",
                channel_id="wa",
                text="refund",
            ),
        ),
    ),
    "document.created": Case(
        {"template_id": "invoice"},
        (
            hit("document.created", template_id="invoice", document_id=5),
            miss(
                "document.created",
                "template_id is 'quote', trigger wants 'invoice'",
                template_id="quote",
                document_id=6,
            ),
        ),
    ),
    "document.opened": Case(
        {"template_id": "3"},
        (
            hit("document.opened", template_id=3, document_id="d-9"),
            miss("document.opened", "event has no template_id, trigger wants '3'", document_id=1),
        ),
    ),
}


def test_the_table_covers_every_trigger_type() -> None:
    assert len(TYPES) == 22
    assert set(CASES) == set(TYPES)
    for code, case in CASES.items():
        _plugin, events, settings = TYPES[code]
        assert set(case.settings) == set(settings), code  # every optional setting is used
        assert {step.type for step in case.steps} <= set(events), code
        assert any(step.skipped is None for step in case.steps), code
        if settings:
            assert any(step.skipped for step in case.steps), code


async def send(api: Api, trigger: dict[str, Any], step: Step, order_id: str) -> str:
    """Send ``step``'s event for ``order_id`` as ``step.via`` says; the stored event's id."""
    before = await event_ids_in_timeline(api, order_id)
    expected_move = [] if step.skipped else [move(order_id, "N", trigger["status"], trigger["id"])]
    if step.via in (EVENT, WEBHOOK):
        if step.via == EVENT:
            event_id = f"{order_id}-e"
            body = event(step.type, id=event_id, order_id=order_id, data=step.data)
            if step.contact is not None:
                body["contact"] = step.contact
            result = await api.post_events(body)
        else:
            result = await api.call("POST", path_of(trigger["webhook_url"]), {"order_id": order_id})
            event_id = result["event_id"]
        assert result == {
            "event_id": event_id,
            "duplicate": False,
            "order_ids": [order_id],
            "moves": expected_move,
        }
    else:
        url = step.data.get("url", f"{SHOP}/any")
        links = await tracking_links(api, order_id, [url], message_id="<t@shop.example>")
        if step.via == PIXEL:
            response = await api.client.get(path_of(links["open_pixel_url"]))
            assert response.status == 200, await response.text()
            assert response.content_type == "image/gif"
        else:
            response = await api.client.get(path_of(links["links"][url]), allow_redirects=False)
            assert response.status == 302, await response.text()
            assert response.headers["Location"] == url
    after = await event_ids_in_timeline(api, order_id)
    assert after[: len(before)] == before and len(after) == len(before) + 1, after
    return after[-1]


async def check_step(api: Api, trigger: dict[str, Any], step: Step, order_id: str) -> None:
    await api.create_order(order_id)
    event_id = await send(api, trigger, step, order_id)
    moved = step.skipped is None
    assert await api.status_of(order_id) == (trigger["status"] if moved else "N")
    stored = await api.get_event(event_id)
    assert stored["type"] == step.type
    assert stored["order_ids"] == [order_id]
    assert stored["moves"] == (
        [move(order_id, "N", trigger["status"], trigger["id"])] if moved else []
    )
    if step.via in (PIXEL, CLICK):
        expected_data = {"message_id": "<t@shop.example>"}
        if step.via == CLICK:
            expected_data["url"] = step.data["url"]
        assert stored["data"] == expected_data
    outcome = ("moved", ()) if moved else ("skipped", (NOT_MATCHING, str(step.skipped)))
    assert_trace(stored["trace"], {(order_id, trigger["id"]): outcome})
    kinds = ["created", "event", "status_changed"] if moved else ["created", "event"]
    assert await api.timeline_kinds(order_id) == kinds


async def test_every_trigger_type_moves_an_order_and_says_why_not(api: Api, subtests: Any) -> None:
    for code, case in CASES.items():
        with subtests.test(msg=code):
            trigger = await api.create_trigger(case.status, code, settings=case.settings)
            try:
                assert trigger["settings"] == case.settings
                assert ("webhook_url" in trigger) is (code == "webhook.called")
                for index, step in enumerate(case.steps):
                    order_id = f"{code}-{index}"
                    with subtests.test(msg=f"{code} step {index} ({step.via})"):
                        await check_step(api, trigger, step, order_id)
            finally:
                await api.delete_all_triggers()


# --- what the plugins declare ---------------------------------------------------------------


async def test_trigger_types_plugins_and_webhook_events_refused(api: Api) -> None:
    types = await api.call("GET", "/api/trigger-types")
    assert sorted(entry["type"] for entry in types) == sorted(TYPES)
    for entry in types:
        plugin, events, settings = TYPES[entry["type"]]
        assert set(entry) == {"type", "plugin", "title", "events", "settings_schema"}, entry
        assert (entry["plugin"], entry["events"]) == (plugin, list(events)), entry
        assert isinstance(entry["title"], str) and entry["title"], entry
        schema = entry["settings_schema"]
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["type"] == "object", entry
        assert set(schema.get("properties", {})) == set(settings), entry
        # the schema refuses what the kernel refuses: an unknown setting
        assert not jsonschema.Draft202012Validator(schema).is_valid({"nope": 1}), entry
    error = await api.error(
        "POST",
        "/api/triggers",
        {"type": "call.incoming", "status": "P", "settings": {"colour": "red"}},
        expect=422,
    )
    assert "colour" in error["message"] and "call.incoming" in error["message"], error
    assert await api.triggers() == []

    plugins = await api.call("GET", "/api/plugins")
    check_plugin_list(plugins)

    # webhook.called is not accepted at /api/events, even with a webhook trigger
    await api.create_order("w1")
    await api.create_trigger("P", "webhook.called")
    count = await api.stored_event_count()
    error = await api.error(
        "POST", "/api/events", event("webhook.called", id="w1-e", order_id="w1"), expect=422
    )
    assert "unknown event type 'webhook.called'" in error["message"], error
    assert f"known types: {', '.join(PUBLIC_EVENT_TYPES)}" in error["message"], error
    assert error["code"] == "unknown_event_type", error
    assert [p["path"] for p in error["details"]] == ["/type"], error
    # nor in a list (which it rejects whole), nor in a dry run
    good = event("payment.received", id="w1-p", order_id="w1")
    error = await api.error(
        "POST", "/api/events", [good, event("webhook.called", order_id="w1")], expect=422
    )
    assert [p["path"] for p in error["details"]] == ["/1/type"], error
    error = await api.error(
        "POST",
        "/api/events",
        event("webhook.called", order_id="w1"),
        expect=422,
        params={"dry_run": "true"},
    )
    assert "unknown event type 'webhook.called'" in error["message"], error
    assert await api.stored_event_count() == count
    assert await api.status_of("w1") == "N"
    await api.get_event("w1-e", expect=404)
    await api.get_event("w1-p", expect=404)


SINK_PLUGINS = {"outgoing_webhooks"}  # built-in plugins without trigger types
ACTION_PLUGINS = {"order_actions", "tasks", "webhook_call", "email_send"}  # action types only


def check_plugin_list(plugins: list[dict[str, Any]]) -> None:
    """The 11 built-in trigger plugins and the sinks, enabled, each with its trigger types."""
    by_name = {entry["name"]: entry for entry in plugins}
    assert len(by_name) == len(plugins), plugins
    built_in = PLUGINS | SINK_PLUGINS | ACTION_PLUGINS
    assert {n for n, e in by_name.items() if e["distribution"] == "statusflow"} == built_in
    for name in built_in:
        entry = by_name[name]
        assert set(entry) == {"name", "distribution", "version", "trigger_types", "enabled"}
        assert entry["version"] == version("statusflow"), entry
        assert entry["enabled"] is True, entry
        assert sorted(entry["trigger_types"]) == sorted(
            code for code, (plugin, _e, _s) in TYPES.items() if plugin == name
        ), entry


def test_statusflow_plugins_json_lists_the_built_in_plugins(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("statusflow")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATUSFLOW_")}
    done = subprocess.run(
        [str(script), "plugins", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    check_plugin_list(json.loads(done.stdout))


# --- responsible.changed from PATCH /api/orders ----------------------------------------------


async def test_patch_changing_responsible_id_emits_responsible_changed(api: Api) -> None:
    await api.create_orders({"r1": {"responsible_id": 3}, "r2": {}, "r3": {"responsible_id": 7}})
    trigger = await api.trigger_id("S", "responsible.changed", settings={"responsible_id": "7"})

    answer = await api.patch_order("r1", {"responsible_id": 7})
    assert (answer["status"], answer["responsible_id"]) == ("S", 7)
    assert await api.status_of("r1") == "S"
    timeline = await api.timeline("r1")
    assert [e["kind"] for e in timeline] == ["created", "event", "status_changed"]
    emitted = timeline[1]
    assert (emitted["type"], emitted["data"]) == (
        "responsible.changed",
        {"responsible_id": 7, "previous_responsible_id": 3},
    )
    assert timeline[2]["trigger_id"] == trigger and timeline[2]["event_id"] == emitted["event_id"]
    stored = await api.get_event(emitted["event_id"])
    assert stored["moves"] == [move("r1", "N", "S", trigger)]

    # another responsible person: an event, but no move, and the trace says why
    answer = await api.patch_order("r2", {"responsible_id": 8})
    assert (answer["status"], answer["responsible_id"]) == ("N", 8)
    timeline = await api.timeline("r2")
    assert [e["kind"] for e in timeline] == ["created", "event"]
    stored = await api.get_event(timeline[1]["event_id"])
    assert_trace(
        stored["trace"],
        {("r2", trigger): ("skipped", (NOT_MATCHING, "responsible_id is '8', trigger wants '7'"))},
    )

    # a patch that moves the order by hand and changes the responsible person: the manual
    # move first, then the event's move from there
    await api.create_order("r4", responsible_id=3)
    answer = await api.patch_order("r4", {"status": "P", "responsible_id": "7"})
    assert (answer["status"], answer["responsible_id"]) == ("S", "7")
    timeline = await api.timeline("r4")
    assert [(e["kind"], e.get("from"), e.get("to")) for e in timeline] == [
        ("created", None, None),
        ("status_changed", "N", "P"),
        ("event", None, None),
        ("status_changed", "P", "S"),
    ]
    assert (timeline[1]["manual"], timeline[3]["trigger_id"]) == (True, trigger)

    # a patch that leaves responsible_id as it is emits nothing
    answer = await api.patch_order("r3", {"amount": 12, "responsible_id": 7})
    assert (answer["status"], answer["amount"]) == ("N", 12)
    assert await api.timeline_kinds("r3") == ["created"]
