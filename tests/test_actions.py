"""Actions (contract section 8), through the API, on SQLite and PostgreSQL.

Time is a manual clock moved by days (``ManualClock.advance``): nothing here sleeps for
a delay, and every wait is for a condition, with a hang guard.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from statusflow.engine.scheduler import ManualClock
from statusflow.http.keys import DATABASE, SCHEDULER
from statusflow.store.schema import ActionRun
from tests.actions_helpers import ActionsApi, ProbeActions, start, until
from tests.helpers import event

RUNS = ActionRun.__table__  # type: ignore[attr-defined]
CANCEL_UNPAID = {"type": "status.change", "settings": {"status": "D"}, "delay": "P3D"}


@pytest.fixture
def database_url(reused_database_url: str) -> str:
    return reused_database_url


@pytest.fixture
async def api(aiohttp_client: Any, database_url: str) -> ActionsApi:
    return await start(aiohttp_client, database_url)


async def run_count(api: ActionsApi) -> int:
    async with api.client.app[DATABASE].read() as sql:
        return int(await sql.scalar(select(func.count()).select_from(RUNS)))


# --- the recipe: no payment within 3 days, cancel ------------------------------------


async def test_no_payment_within_3_days_cancels_the_order(api: ActionsApi) -> None:
    action = await api.create_action("N", **CANCEL_UNPAID)
    assert action["delay"] == "P3D" and action["active"] is True
    await api.create_trigger("P")  # payment.received moves to P
    await api.create_order("unpaid")
    await api.create_order("paid")
    [pending] = await api.runs("unpaid")
    assert pending["state"] == "pending" and pending["started_at"] is None
    assert pending["due_at"] > (await api.order("unpaid"))["created_at"]

    await api.post_events(event(order_id="paid", id="pay-1"))
    [canceled] = await api.runs("paid")
    assert canceled["state"] == "canceled"
    assert "left status 'N' for 'P'" in canceled["reason"] and "pay-1" in canceled["reason"]
    entries = [e for e in await api.timeline("paid") if e["kind"] == "action"]
    assert entries == [
        {
            "at": canceled["finished_at"],
            "kind": "action",
            "action_id": action["id"],
            "run_id": canceled["id"],
            "action_type": "status.change",
            "state": "canceled",
            "reason": canceled["reason"],
        }
    ]

    api.clock.advance(timedelta(days=2))  # not yet
    api.clock.advance(timedelta(days=1, seconds=1))
    await api.wait_status("unpaid", "D")
    done = await api.wait_run("unpaid", action["id"])
    assert done["attempts"] == 1 and done["lateness"] >= 0
    assert done["reason"] == "moved the order from 'N' to 'D'"
    assert await api.status_of("paid") == "P"
    kinds = [(e["kind"], e.get("action_id")) for e in await api.timeline("unpaid")]
    assert kinds == [("created", None), ("status_changed", 1), ("action", 1)]
    moved = next(e for e in await api.timeline("unpaid") if e["kind"] == "status_changed")
    assert moved["manual"] is False and moved["trigger_id"] is None


async def test_entering_the_status_again_schedules_new_runs(api: ActionsApi) -> None:
    action = await api.create_action("N", **CANCEL_UNPAID)
    await api.create_order("o1")
    await api.patch_order("o1", {"status": "P"})  # a manual move cancels
    await api.patch_order("o1", {"status": "N"})  # and coming back schedules anew
    first, second = await api.runs("o1")
    assert first["state"] == "canceled" and "a manual move" in first["reason"]
    assert second["state"] == "pending" and second["action_id"] == action["id"]
    api.clock.advance(timedelta(days=3, minutes=1))
    await api.wait_status("o1", "D")


async def test_an_action_move_schedules_the_next_status_and_is_told_to_sinks(
    api: ActionsApi,
) -> None:
    to_paid = await api.create_action("N", "status.change", settings={"status": "P"})
    tag = await api.create_action("P", "field.set", settings={"field": "tag", "value": "vip"})
    await api.create_order("o1")
    await api.wait_run("o1", tag["id"])
    order = await api.order("o1")
    assert order["status"] == "P" and order["fields"] == {"tag": "vip"}
    feed = await api.call("GET", "/api/moves", params={"after": "0"})
    assert [(m["from"], m["to"]) for m in feed["moves"]] == [("N", "P")]
    runs = await api.runs("o1")
    assert [(r["action_id"], r["state"]) for r in runs] == [
        (to_paid["id"], "done"),
        (tag["id"], "done"),
    ]


# --- when runs are written --------------------------------------------------------------


async def test_runs_commit_with_the_move_and_a_dry_run_says_what_it_would_schedule(
    api: ActionsApi,
) -> None:
    action = await api.create_action(
        "P", "field.set", settings={"field": "x", "value": 1}, delay="PT1H"
    )
    await api.create_trigger("P")
    await api.create_order("o1")
    dry = await api.post_events(event(order_id="o1"), dry_run=True)
    assert dry["runs"] == [
        {
            "order_id": "o1",
            "action_id": action["id"],
            "status": "P",
            "due_at": dry["runs"][0]["due_at"],
        }
    ]
    assert await run_count(api) == 0  # a dry run stores nothing
    result = await api.post_events(event(order_id="o1"))
    [run] = await api.runs("o1")  # written with the move, before the answer
    assert result["moves"] and run["state"] == "pending" and run["status"] == "P"


async def test_conditions_are_checked_when_due(api: ActionsApi) -> None:
    big = [{"field": "amount", "op": "gt", "value": 100}]
    action = await api.create_action(
        "N", "field.set", settings={"field": "big", "value": True}, conditions=big, delay="PT1H"
    )
    await api.create_order("small", amount=50)
    await api.create_order("grows", amount=50)
    await api.patch_order("grows", {"amount": 500})  # after scheduling, before due
    api.clock.advance(timedelta(hours=2))
    skipped = await api.wait_run("small", action["id"], ("skipped",))
    assert skipped["reason"].startswith("condition failed: amount gt 100")
    await api.wait_run("grows", action["id"])
    assert (await api.order("grows"))["fields"] == {"big": True}


async def test_after_previous_waits_for_the_run_before(api: ActionsApi) -> None:
    first = await api.create_action(
        "N", "field.set", settings={"field": "a", "value": 1}, delay="PT1H"
    )
    second = await api.create_action(
        "N", "field.set", settings={"field": "b", "value": 2}, delay="PT30M", after_previous=True
    )
    await api.create_order("o1")
    waiting = (await api.runs_of("o1", second["id"]))[0]
    assert waiting["due_at"] is None and waiting["state"] == "pending"
    api.clock.advance(timedelta(minutes=61))
    one = await api.wait_run("o1", first["id"])
    released = (await api.runs_of("o1", second["id"]))[0]
    assert released["due_at"] is not None and released["due_at"] > one["finished_at"]
    assert released["state"] == "pending"
    api.clock.advance(timedelta(minutes=31))
    await api.wait_run("o1", second["id"])
    assert (await api.order("o1"))["fields"] == {"a": 1, "b": 2}


# --- retries, failures, leases ------------------------------------------------------------


async def test_a_failing_run_is_retried_with_backoff_then_failed(
    aiohttp_client: Any, database_url: str
) -> None:
    api = await start(
        aiohttp_client, database_url, probe=ProbeActions(), max_attempts=3, retry_initial_seconds=60
    )
    action = await api.create_action("N", "test.fail")
    await api.create_order("o1")

    async def attempts(n: int) -> dict[str, Any] | None:
        [run] = await api.runs("o1")
        return run if run["attempts"] == n and run["state"] == "pending" else None

    first = await until(lambda: attempts(1), "the first attempt")
    assert first["reason"] == "attempt 1 failed: the far side is down (attempt 1)"
    assert first["next_attempt_at"] > first["started_at"]
    api.clock.advance(timedelta(hours=1))
    await until(lambda: attempts(2), "the second attempt")
    api.clock.advance(timedelta(hours=1))
    failed = await api.wait_run("o1", action["id"], ("failed",))
    assert failed["attempts"] == 3
    assert failed["reason"] == "after 3 attempts: the far side is down (attempt 3)"
    [entry] = [e for e in await api.timeline("o1") if e["kind"] == "action"]
    assert entry["state"] == "failed" and entry["reason"] == failed["reason"]


async def test_a_run_whose_lease_expired_is_claimed_again(
    aiohttp_client: Any, database_url: str
) -> None:
    probe = ProbeActions()
    api = await start(aiohttp_client, database_url, probe=probe, lease_seconds=300)
    action = await api.create_action("N", "test.count", delay="PT1H")
    await api.create_order("o1")
    [run] = await api.runs("o1")
    # an instance claimed it and died: running, its lease ran out an hour ago
    async with api.client.app[DATABASE].write() as sql:
        await sql.run(
            RUNS.update().where(RUNS.c.id == run["id"]),
            {
                "state": "running",
                "attempts": 1,
                "lease_token": "dead",
                "next_at": run["due_at"],
                "started_at": run["due_at"],
            },
        )
    api.clock.advance(timedelta(hours=2))
    done = await api.wait_run("o1", action["id"])
    assert done["attempts"] == 2 and probe.calls == [run["id"]]
    assert done["started_at"] == run["due_at"]  # its first start counts for its lateness


# --- the API -------------------------------------------------------------------------------


async def test_run_now_and_cancel(api: ActionsApi) -> None:
    action = await api.create_action(
        "N", "field.set", settings={"field": "x", "value": 1}, delay="P3D"
    )
    await api.create_order("o1")
    await api.create_order("o2")
    [run] = await api.runs("o1")
    now = await api.call("POST", f"/api/runs/{run['id']}/run-now")
    assert now["id"] == run["id"] and now["due_at"] < run["due_at"]
    done = await api.wait_run("o1", action["id"])
    for verb in ("cancel", "run-now"):
        error = await api.error("POST", f"/api/runs/{run['id']}/{verb}", expect=409)
        assert error["code"] == "conflict" and "finished" in error["message"]
    [other] = await api.runs("o2")
    canceled = await api.call("POST", f"/api/runs/{other['id']}/cancel")
    assert canceled["state"] == "canceled" and canceled["reason"] == "canceled through the API"
    await api.error("POST", f"/api/runs/{other['id']}/cancel", expect=409)
    await api.error("POST", "/api/runs/999999/cancel", expect=404)
    await api.error("POST", "/api/runs/nope/run-now", expect=404)
    await api.error("GET", "/api/orders/nobody/runs", expect=404)
    assert done["state"] == "done"


async def test_a_started_run_cannot_be_canceled(aiohttp_client: Any, database_url: str) -> None:
    probe = ProbeActions()
    api = await start(aiohttp_client, database_url, probe=probe)
    action = await api.create_action("N", "test.wait")
    await api.create_order("o1")
    await until(lambda: _started(probe), "the run to start")
    [run] = await api.runs("o1")
    assert run["state"] == "running"
    error = await api.error("POST", f"/api/runs/{run['id']}/cancel", expect=409)
    assert "already started" in error["message"]
    probe.release.set()
    await api.wait_run("o1", action["id"])


async def _started(probe: ProbeActions) -> bool:
    return probe.started.is_set()


async def test_actions_are_checked_like_triggers(api: ActionsApi) -> None:
    async def refused(body: dict[str, Any], fragment: str) -> None:
        error = await api.error("POST", "/api/actions", body, expect=422)
        assert fragment in error["message"], error

    await refused({"status": "N", "type": "nope"}, "unknown or disabled action type 'nope'")
    await refused(
        {"status": "X", "type": "field.set", "settings": {"field": "a", "value": 1}},
        "unknown status 'X'",
    )
    await refused({"status": "N", "type": "status.change", "settings": {}}, "settings")
    await refused(
        {"status": "N", "type": "status.change", "settings": {"status": "Z"}}, "unknown status 'Z'"
    )
    base = {"status": "N", "type": "status.change", "settings": {"status": "D"}}
    await refused({**base, "delay": "P1M"}, "years or months")
    await refused({**base, "delay": "3 days"}, "not an ISO-8601 duration")
    await refused(
        {**base, "conditions": [{"field": "color", "op": "eq", "value": 1}]}, "unknown field"
    )
    await refused(
        {**base, "conditions": [{"field": "amount", "op": "near", "value": 1}]}, "unknown operator"
    )
    await refused({**base, "position": "first"}, "position")
    await api.error("POST", "/api/actions?apply_to_existing=maybe", base, expect=422)
    assert await api.call("GET", "/api/actions") == []
    types = {t["type"]: t for t in await api.call("GET", "/api/action-types")}
    assert {"status.change", "responsible.change", "field.set"} <= set(types)
    assert types["status.change"]["plugin"] == "order_actions"
    assert set(types["status.change"]) == {"type", "plugin", "title", "settings_schema"}


async def test_listing_editing_and_deleting_actions(api: ActionsApi) -> None:
    paid = await api.create_action("P", "field.set", settings={"field": "a", "value": 1})
    second = await api.create_action(
        "N", "field.set", settings={"field": "b", "value": 1}, delay="P1D"
    )
    first = await api.create_action(
        "N", "field.set", settings={"field": "c", "value": 1}, position=-5
    )
    listed = await api.call("GET", "/api/actions")
    assert [a["id"] for a in listed] == [first["id"], second["id"], paid["id"]]
    only = await api.call("GET", "/api/actions", params={"status": "P"})
    assert [a["id"] for a in only] == [paid["id"]]

    await api.create_order("o1")
    [run] = await api.runs_of("o1", second["id"])
    patched = await api.call(
        "PATCH", f"/api/actions/{second['id']}", {"delay": "P2D", "name": "later"}
    )
    assert patched["delay"] == "P2D" and patched["name"] == "later"
    [moved] = await api.runs_of("o1", second["id"])
    assert moved["due_at"] > run["due_at"]  # counted again from when the order entered
    await api.error("PATCH", f"/api/actions/{second['id']}", {"delay": "soon"}, expect=422)
    await api.error("PATCH", f"/api/actions/{second['id']}", {"secret": 1}, expect=422)

    disabled = await api.call("PATCH", f"/api/actions/{second['id']}", {"enabled": False})
    assert disabled["enabled"] is False
    [gone] = await api.runs_of("o1", second["id"])
    assert gone["state"] == "canceled" and gone["reason"] == f"action {second['id']} was disabled"

    await api.create_order("o2")
    runs = await api.runs_of("o2", second["id"])
    assert runs == []  # disabled: no run
    await api.call("DELETE", f"/api/actions/{first['id']}", expect=204)
    await api.error("GET", f"/api/actions/{first['id']}", expect=404)
    await api.error("DELETE", f"/api/actions/{first['id']}", expect=404)


async def test_deleting_an_action_cancels_its_pending_runs(api: ActionsApi) -> None:
    action = await api.create_action("N", **CANCEL_UNPAID)
    await api.create_order("o1")
    await api.call("DELETE", f"/api/actions/{action['id']}", expect=204)
    [run] = await api.runs("o1")
    assert run["state"] == "canceled" and run["reason"] == f"action {action['id']} was deleted"
    api.clock.advance(timedelta(days=4))
    assert await api.status_of("o1") == "N"


async def test_a_status_with_actions_cannot_be_dropped(api: ActionsApi) -> None:
    await api.create_action("S", "field.set", settings={"field": "a", "value": 1})
    pipeline = [s for s in await api.call("GET", "/api/statuses") if s["id"] != "S"]
    error = await api.error("PUT", "/api/statuses", pipeline, expect=409)
    assert error["code"] == "status_in_use" and "'S' has actions" in error["message"]


async def test_apply_to_existing_schedules_for_orders_already_in_the_status(
    api: ActionsApi,
) -> None:
    await api.create_order("o1")
    await api.create_order("o2", status="P")
    action = await api.call(
        "POST",
        "/api/actions",
        {"status": "N", **CANCEL_UNPAID},
        expect=201,
        params={"apply_to_existing": "true"},
    )
    [run] = await api.runs("o1")
    assert run["action_id"] == action["id"] and run["state"] == "pending"
    assert await api.runs("o2") == []
    api.clock.advance(timedelta(days=3, minutes=1))
    await api.wait_status("o1", "D")


# --- loops are bounded ------------------------------------------------------------------


async def test_two_actions_bouncing_an_order_stop_at_the_daily_limit(
    aiohttp_client: Any, database_url: str
) -> None:
    api = await start(aiohttp_client, database_url, max_moves_per_order_per_day=5)
    there = await api.create_action("N", "status.change", settings={"status": "P"})
    back = await api.create_action("P", "status.change", settings={"status": "N"})
    await api.create_order("o1")

    async def stopped() -> dict[str, Any] | None:
        failed = [r for r in await api.runs("o1") if r["state"] == "failed"]
        return failed[0] if failed else None

    failed = await until(stopped, "the bouncing to stop")
    assert "max_moves_per_order_per_day = 5" in failed["reason"]
    runs = await api.runs("o1")
    assert [r["state"] for r in runs] == ["done"] * 5 + ["failed"]
    assert {r["action_id"] for r in runs} == {there["id"], back["id"]}
    moves = (await api.call("GET", "/api/moves", params={"after": "0"}))["moves"]
    assert len(moves) == 5
    # a day later the order may move again (the limit is per 24 hours)
    await api.patch_order("o1", {"status": "P"})


# --- several instances --------------------------------------------------------------------


@pytest.mark.postgres
async def test_two_instances_on_one_postgres_run_each_run_once(
    aiohttp_client: Any, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("several instances share PostgreSQL (SQLite has its own test: one writer)")
    probes = [ProbeActions(), ProbeActions()]
    clock = ManualClock()
    apis = [
        await start(aiohttp_client, database_url, probe=probe, clock=clock, concurrency=4)
        for probe in probes
    ]
    await apis[0].create_action("N", "test.count", delay="PT1H")
    for index in range(60):
        await apis[index % 2].create_order(f"o{index}")
    clock.advance(timedelta(hours=2))  # due at once, for both

    async def all_done() -> bool:
        async with apis[0].client.app[DATABASE].read() as sql:
            rows = (await sql.execute(select(RUNS.c.state))).all()
        return len(rows) == 60 and all(row.state == "done" for row in rows)

    await until(all_done, "every run to be done")
    calls = probes[0].calls + probes[1].calls
    assert sorted(calls) == sorted(set(calls)) and len(calls) == 60
    ended = [api.client.app[SCHEDULER].ended for api in apis]
    assert sum(ended) == 60


async def test_a_move_between_statuses_without_actions_writes_nothing_for_runs(
    api: ActionsApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    await api.create_action("S", "field.set", settings={"field": "a", "value": 1})
    await api.create_trigger("P")
    await api.create_order("o1")
    async with api.client.app[DATABASE].read() as sql:
        store = type(sql)  # the dialect's store
    calls: list[str] = []
    for name in ("cancel_left", "insert_runs"):
        original = getattr(store, name)

        async def spy(self: Any, *args: Any, _name: str = name, _f: Any = original) -> Any:
            calls.append(_name)
            return await _f(self, *args)

        monkeypatch.setattr(store, name, spy)
    await api.post_events(event(order_id="o1"))  # N -> P: neither has actions
    assert await api.status_of("o1") == "P" and calls == []
    await api.patch_order("o1", {"status": "S"})  # entering S: one insert
    assert calls == ["insert_runs"]


# --- configuration -------------------------------------------------------------------------


def test_actions_and_smtp_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    from statusflow.errors import StartupError
    from statusflow.serving.config import settings_from_mapping

    defaults = settings_from_mapping({}).actions
    assert (defaults.max_moves_per_order_per_day, defaults.max_attempts) == (100, 5)
    chosen = settings_from_mapping({"actions": {"max_attempts": 2, "concurrency": 3}}).actions
    assert (chosen.max_attempts, chosen.concurrency) == (2, 3)
    with pytest.raises(StartupError, match=r"actions\.lease_seconds"):
        settings_from_mapping({"actions": {"lease_seconds": 10, "run_timeout_seconds": 10}})
    with pytest.raises(StartupError, match="actions"):
        settings_from_mapping({"actions": {"max_attempts": 0}})
    with pytest.raises(StartupError, match="smtp"):
        settings_from_mapping({"smtp": {"port": 25}})
    monkeypatch.setenv("SMTP_PASSWORD_FOR_TEST", "s3cret")
    smtp = {"host": "mail", "from": "a@b.c", "password": {"$env": "SMTP_PASSWORD_FOR_TEST"}}
    assert settings_from_mapping({"smtp": smtp}).tables["smtp"]["password"] == "s3cret"
    monkeypatch.delenv("SMTP_PASSWORD_FOR_TEST")
    with pytest.raises(StartupError, match="SMTP_PASSWORD_FOR_TEST"):
        settings_from_mapping({"smtp": smtp})


async def test_metrics_show_runs(api: ActionsApi) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    async def metrics() -> dict[str, float]:
        response = await api.client.get("/metrics")
        text = await response.text()
        return {
            sample.name: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    action = await api.create_action("N", **CANCEL_UNPAID)
    await api.create_order("o1")
    shown = await metrics()
    assert shown["statusflow_action_runs_scheduled"] == 1
    assert shown["statusflow_action_runs_due"] == 0
    assert shown["statusflow_action_runs_oldest_due_seconds"] == 0
    api.clock.advance(timedelta(days=4))
    await api.wait_run("o1", action["id"])
    shown = await metrics()
    assert shown["statusflow_action_runs_scheduled"] == 0
    assert "statusflow_action_runs_total" in shown  # ended runs, by state


async def test_responsible_change_emits_no_event(api: ActionsApi) -> None:
    action = await api.create_action("N", "responsible.change", settings={"responsible_id": "u7"})
    await api.create_trigger("S", type="responsible.changed")  # a PATCH would fire it
    await api.create_order("o1", responsible_id="u3")
    await api.create_order("o2", responsible_id="u7")
    done = await api.wait_run("o1", action["id"])
    assert done["reason"] == "responsible_id changed from 'u3' to 'u7'"
    skipped = await api.wait_run("o2", action["id"], ("skipped",))
    assert skipped["reason"] == "responsible_id is already 'u7'"
    order = await api.order("o1")
    assert order["responsible_id"] == "u7" and order["status"] == "N"  # no trigger fired
    assert [e["kind"] for e in await api.timeline("o1")] == ["created", "action"]


@pytest.mark.postgres
async def test_a_run_written_by_another_instance_wakes_this_one(
    aiohttp_client: Any, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's (SQLite's writers tell their own scheduler)")
    writer = await start(aiohttp_client, database_url, run=False)  # schedules, never runs
    runner = await start(aiohttp_client, database_url)
    scheduler = runner.client.app[SCHEDULER]
    assert scheduler.listener is not None
    # the runner's LISTEN connects in the background: a run written before it holds is
    # found by the look the (re)connection triggers, not by a notification
    await asyncio.wait_for(scheduler.listener.listening.wait(), timeout=30)
    action = await writer.create_action("N", "field.set", settings={"field": "a", "value": 1})
    await writer.create_order("o1")
    await runner.wait_run("o1", action["id"])
    assert scheduler.notified >= 1  # woken by NOTIFY, not by its once-a-minute look
    assert writer.client.app[SCHEDULER].ended == 0
