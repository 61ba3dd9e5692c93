"""A trigger type whose event types come from another plugin, while that plugin is away.

``parcel_triggers`` offers trigger types over events that ``parcel_events`` registers:
``parcel.delivered`` listens to ``parcel.delivered`` alone, ``parcel.or_payment`` to
``parcel.lost`` and the built-in ``payment.received``. With ``parcel_events`` disabled or
uninstalled the server starts as before, with a warning for each: the first type is not
loaded (its triggers are kept, inactive, with the reason; it is neither offered nor
accepted), the second listens to ``payment.received`` only.
"""

from __future__ import annotations

import sqlite3

from statusflow import EventType, TriggerType, hookimpl
from tests.helpers import write_distribution
from tests.processes import Serve, clean_env

INACTIVE = (
    "trigger type 'parcel.delivered' listens to event type 'parcel.delivered', "
    "which no loaded plugin registers"
)

EVENTS_SOURCE = """
from statusflow import EventType, hookimpl


@hookimpl
def register_event_types(register):
    register(EventType("parcel.delivered", "Parcel delivered"))
    register(EventType("parcel.lost", "Parcel lost"))
"""

TRIGGERS_SOURCE = """
from statusflow import TriggerType, hookimpl


@hookimpl
def register_trigger_types(register):
    register(TriggerType("parcel.delivered", "Delivered", ("parcel.delivered",)))
    register(TriggerType("parcel.or_payment", "Lost or paid", ("parcel.lost", "payment.received")))
"""


class ParcelEvents:
    @hookimpl
    def register_event_types(self, register):
        register(EventType("parcel.delivered", "Parcel delivered"))
        register(EventType("parcel.lost", "Parcel lost"))


class ParcelTriggers:
    @hookimpl
    def register_trigger_types(self, register):
        register(TriggerType("parcel.delivered", "Delivered", ("parcel.delivered",)))
        register(
            TriggerType("parcel.or_payment", "Lost or paid", ("parcel.lost", "payment.received"))
        )


def _warnings(output: str) -> dict[str, str]:
    """The start-up warnings about trigger types, by their event name."""
    found = {}
    for line in output.splitlines():
        for name in ("plugins.trigger_type_inactive", "plugins.trigger_type_narrowed"):
            if name in line:
                assert name not in found, output  # once each
                found[name] = line
    return found


def _check_warnings(output: str) -> None:
    warnings = _warnings(output)
    assert set(warnings) == {"plugins.trigger_type_inactive", "plugins.trigger_type_narrowed"}
    inactive = warnings["plugins.trigger_type_inactive"]
    for needle in ("parcel_triggers", "parcel.delivered", "missing_event_types"):
        assert needle in inactive, inactive
    narrowed = warnings["plugins.trigger_type_narrowed"]
    for needle in ("parcel_triggers", "parcel.or_payment", "parcel.lost", "payment.received"):
        assert needle in narrowed, narrowed


async def test_with_the_event_plugin_away_its_listeners_narrow_or_go_inactive(
    statusflow_app, capfd
):
    both = ["payment", ("parcel_events", ParcelEvents()), ("parcel_triggers", ParcelTriggers())]
    sf = await statusflow_app(plugins=both)
    for order_id in ("o1", "o2", "o3"):
        await sf.create_order(order_id)
    delivered = await sf.create_trigger("parcel.delivered", "F")
    either = await sf.create_trigger("parcel.or_payment", "P")
    moved = await sf.post_event(type="parcel.delivered", order_id="o1")
    assert moved["moves"][0]["trigger_id"] == delivered["id"]
    assert _warnings(capfd.readouterr().out) == {}
    await sf.close()

    away = await statusflow_app(
        plugins=["payment", ("parcel_triggers", ParcelTriggers())], database_url=sf.database_url
    )
    _check_warnings(capfd.readouterr().out)
    listed = {t["id"]: t for t in await away.call("GET", "/api/triggers")}
    assert (listed[delivered["id"]]["active"], listed[delivered["id"]]["inactive_reason"]) == (
        False,
        INACTIVE,
    )
    assert (await away.call("GET", f"/api/triggers/{delivered['id']}"))["status"] == "F"
    assert listed[either["id"]]["active"] is True
    # not offered, and refused as an unknown type is
    types = {t["type"]: t for t in await away.call("GET", "/api/trigger-types")}
    assert "parcel.delivered" not in types
    assert types["parcel.or_payment"]["events"] == ["payment.received"]
    refused = await away.call(
        "POST", "/api/triggers", {"type": "parcel.delivered", "status": "F"}, expect=422
    )
    unknown = await away.call(
        "POST", "/api/triggers", {"type": "no.such", "status": "F"}, expect=422
    )
    assert refused["error"]["message"] == unknown["error"]["message"].replace(
        "'no.such'", "'parcel.delivered'"
    )
    # events ignore it, and their traces do not list it
    result = await away.post_event(id="pay-o2", type="payment.received", order_id="o2")
    assert result["moves"] == [
        {"order_id": "o2", "from": "N", "to": "P", "trigger_id": either["id"]}
    ]
    trace = (await away.get_event("pay-o2"))["trace"]
    assert [t["trigger_id"] for t in trace] == [either["id"]]
    await away.post_event(type="parcel.delivered", order_id="o3", expect=422)
    await away.close()

    back = await statusflow_app(plugins=both, database_url=sf.database_url)
    listed = {t["id"]: t for t in await back.call("GET", "/api/triggers")}
    assert all(t["active"] and t["inactive_reason"] is None for t in listed.values())
    moved = await back.post_event(type="parcel.delivered", order_id="o3")
    assert moved["moves"][0]["trigger_id"] == delivered["id"]
    assert _warnings(capfd.readouterr().out) == {}


def test_serve_starts_with_the_event_plugin_disabled_or_uninstalled(tmp_path):
    site = tmp_path / "site"
    write_distribution(site, "parcel_events", EVENTS_SOURCE)
    write_distribution(site, "parcel_triggers", TRIGGERS_SOURCE)
    without_events = tmp_path / "without-events"
    write_distribution(without_events, "parcel_triggers", TRIGGERS_SOURCE)
    db = tmp_path / "statusflow.db"
    enable = '["payment", "parcel_events", "parcel_triggers"]'
    config = tmp_path / "all.toml"
    config.write_text(f'database_url = "sqlite:///{db}"\n[plugins]\nenable = {enable}\n')
    disabled = tmp_path / "disabled.toml"
    disabled.write_text(
        f'database_url = "sqlite:///{db}"\n[plugins]\nenable = {enable}\n'
        'disable = ["parcel_events"]\n'
    )

    server = Serve(config, clean_env(PYTHONPATH=str(site)), tmp_path / "all.log")
    try:
        server.call("POST", "/api/orders", {"id": "o1"}, expect=201)
        delivered = server.call(
            "POST", "/api/triggers", {"type": "parcel.delivered", "status": "F"}, expect=201
        )
        server.call(
            "POST", "/api/triggers", {"type": "parcel.or_payment", "status": "P"}, expect=201
        )
    finally:
        assert server.stop() == 0, server.output()

    # uninstalled, it leaves [plugins] enable too (a name no plugin has stops start-up)
    uninstalled = tmp_path / "uninstalled.toml"
    uninstalled.write_text(
        f'database_url = "sqlite:///{db}"\n[plugins]\nenable = ["payment", "parcel_triggers"]\n'
    )
    runs = [
        (disabled, clean_env(PYTHONPATH=str(site)), "disabled"),
        (uninstalled, clean_env(PYTHONPATH=str(without_events)), "uninstalled"),
    ]
    for config_file, env, name in runs:
        server = Serve(config_file, env, tmp_path / f"{name}.log")
        try:
            listed = {t["type"]: t for t in server.call("GET", "/api/triggers")}
            assert listed["parcel.delivered"]["active"] is False, name
            assert listed["parcel.delivered"]["inactive_reason"] == INACTIVE, name
            assert listed["parcel.or_payment"]["active"] is True, name
            types = {t["type"]: t["events"] for t in server.call("GET", "/api/trigger-types")}
            assert types == {
                "payment.received": ["payment.received"],
                "parcel.or_payment": ["payment.received"],
            }
            moved = server.call(
                "POST", "/api/events", {"type": "payment.received", "order_id": "o1"}
            )
            assert [m["to"] for m in moved["moves"]] == ["P"], name
            server.call("PATCH", "/api/orders/o1", {"status": "N"})
        finally:
            assert server.stop() == 0, server.output()
        _check_warnings(server.log.read_text())
    with sqlite3.connect(db) as conn:  # the trigger stayed as it was
        row = conn.execute("SELECT type, status FROM triggers WHERE id = ?", (delivered["id"],))
        assert row.fetchone() == ("parcel.delivered", "F")
