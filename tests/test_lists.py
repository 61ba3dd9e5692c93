"""Contract §7: the lists of orders and events and the paged timeline, on both databases.

Each list is walked page by page and compared with what was stored; pages stay whole
while orders and events are added between them; every bad ``limit``, ``cursor`` and
filter value is a 422 that names the parameter.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from statusflow.http.keys import DATABASE
from statusflow.store import lists
from statusflow.testing import temporary_postgres_database
from tests.conftest import require_postgres
from tests.helpers import Api, assert_error_shape, event


@pytest.fixture
def database_url(reused_database_url: str) -> str:
    """A fresh SQLite file, then the session's PostgreSQL database emptied (faster)."""
    return reused_database_url


@pytest.fixture
async def api(make_client: Any) -> Api:
    return Api(await make_client(enable=("payment", "calls")))


async def walk(api: Api, path: str, **params: str) -> tuple[list[Any], int]:
    """Every item of a list, following ``next``; and how many pages it took."""
    items: list[Any] = []
    pages = 0
    cursor = None
    while True:
        query = dict(params, **({"cursor": cursor} if cursor else {}))
        page = await api.call("GET", path, params=query)
        assert set(page) == {"items", "next"}, page
        pages += 1
        items += page["items"]
        cursor = page["next"]
        if cursor is None:
            return items, pages
        assert page["items"], "a page with a next is never empty"
        assert pages < 100, "the list does not end"


async def bad(api: Api, path: str, parameter: str, code: str = "", **params: str) -> str:
    """A 422 naming ``parameter``; its message."""
    answer = await api.call("GET", path, params=params, expect=422)
    error = assert_error_shape(answer, code or answer["error"]["code"])
    assert parameter in error["message"] + str(error["details"]), error
    return str(error["message"])


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["id"] for item in items]


# --- orders ------------------------------------------------------------------------------


async def test_orders_newest_first_in_pages_that_stay_whole_when_orders_are_added(api):
    for n in range(12):
        await api.create_order(f"o{n:02}")
    everything = (await api.call("GET", "/api/orders"))["items"]
    assert ids(everything) == [f"o{n:02}" for n in reversed(range(12))]
    assert (await api.call("GET", "/api/orders"))["next"] is None

    first = await api.call("GET", "/api/orders", params={"limit": "5"})
    assert ids(first["items"]) == ids(everything)[:5]
    await api.create_order("o12")  # newer than every page: never shows up in them
    second = await api.call("GET", "/api/orders", params={"limit": "5", "cursor": first["next"]})
    assert ids(second["items"]) == ids(everything)[5:10]
    third = await api.call("GET", "/api/orders", params={"cursor": second["next"], "limit": "5"})
    assert ids(third["items"]) == ids(everything)[10:] and third["next"] is None

    walked, pages = await walk(api, "/api/orders", limit="1")
    assert ids(walked) == ["o12", *ids(everything)] and pages == 13
    assert walked[0] == await api.order("o12")  # each item is the order as GET shows it
    walked, pages = await walk(api, "/api/orders", limit="13")
    assert len(walked) == 13 and pages == 1


async def test_orders_by_status(api):
    for n in range(6):
        await api.create_order(f"o{n}")
    for order_id in ("o1", "o2", "o4"):
        await api.patch_order(order_id, {"status": "P"})
    assert ids((await api.call("GET", "/api/orders", params={"status": "P"}))["items"]) == [
        "o4",
        "o2",
        "o1",
    ]
    walked, pages = await walk(api, "/api/orders", status="N", limit="2")
    assert ids(walked) == ["o5", "o3", "o0"] and pages == 2
    assert (await api.call("GET", "/api/orders", params={"status": "F"})) == {
        "items": [],
        "next": None,
    }


async def test_q_finds_orders_by_id_by_phone_in_any_format_and_by_email_in_any_case(api):
    ada = {"phones": ["+1 415 555 0100"], "emails": ["Ada@Example.com"]}
    await api.create_order("1001", contact=ada)
    await api.create_order("1002", company={"phones": ["(415) 555-0100"]}, status="F")
    await api.create_order("1003", contact={"emails": ["bob@example.com"]})
    await api.create_order("14155550100")  # an id that is also the phone

    async def found(q: str, **params: str) -> list[str]:
        return ids((await api.call("GET", "/api/orders", params={"q": q, **params}))["items"])

    assert await found("1003") == ["1003"]
    for phone in ("415-555-0100", "+14155550100", "(415) 555 0100", "1 415 555 0100"):
        assert await found(phone) == ["1002", "1001"], phone  # final statuses too
    assert await found("14155550100") == ["14155550100", "1002", "1001"]
    assert await found("ADA@example.COM") == ["1001"]
    assert await found(" ada@example.com ") == ["1001"]
    assert await found("nobody@example.com") == []
    assert await found("9999") == []
    assert await found("415-555-0100", status="F") == ["1002"]
    walked, pages = await walk(api, "/api/orders", q="14155550100", limit="1")
    assert ids(walked) == ["14155550100", "1002", "1001"] and pages == 3


async def test_bad_order_list_parameters_are_422s_that_name_them(api):
    await api.create_order("o1")
    await api.create_order("o2")
    path = "/api/orders"
    for limit in ("0", "501", "-1", "abc", "", "1.5", "1e2", "+5", "٣", "9" * 5000):
        await bad(api, path, "limit", limit=limit)
    await bad(api, path, "status", "unknown_status", status="ZZ")
    for empty in ("", "  "):
        await bad(api, path, "status", status=empty)
        await bad(api, path, "q", q=empty)
    await bad(api, path, "q", q="x" * 321)
    answer = await api.client.get(f"{path}?limit=1&limit=2")
    assert answer.status == 422 and "limit" in (await answer.json())["error"]["message"]
    assert (await api.call("GET", path, params={"limit": "500"}))["next"] is None

    cursor = (await api.call("GET", path, params={"limit": "1"}))["next"]
    assert cursor
    body, _, signature = cursor.partition(".")
    tampered = [
        cursor[:-1] + ("A" if cursor[-1] != "A" else "B"),
        cursor[:10],
        body,
        "garbage",
        "%%%",
        "é" * 10,
        _forged(body, position=["2000-01-01T00:00:00.000000Z", "o1"]) + "." + signature,
    ]
    for wrong in tampered:
        await bad(api, path, "cursor", "invalid_cursor", cursor=wrong)
    # a cursor is for the filters that gave it, and for its own list
    await bad(api, path, "cursor", "invalid_cursor", cursor=cursor, status="N")
    await bad(api, "/api/events", "cursor", "invalid_cursor", cursor=cursor)
    page = await api.call("GET", path, params={"cursor": cursor, "limit": "1"})
    assert ids(page["items"]) == ["o1"]


def _forged(body: str, position: Any) -> str:
    """The cursor's payload with another position, encoded as it was."""
    import json

    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["at"] = position
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# --- events ------------------------------------------------------------------------------


async def _some_events(api: Api) -> dict[str, int]:
    """o1 and o2 share a phone; a payment moves o1; calls move nothing."""
    paid = await api.trigger_id("P")
    phone = {"phones": ["+14155550100"]}
    await api.create_order("o1", contact=phone)
    await api.create_order("o2", contact=phone)
    await api.create_order("o3")
    await api.post_events(event(id="e1", order_id="o1"))  # moves o1 N -> P
    await api.post_events(event("call.missed", id="e2", contact={"phone": "415 555 0100"}))
    await api.post_events(event("call.missed", id="e3", contact={"phone": "+15550000000"}))
    await api.post_events(event(id="e4", order_id="o3"))  # moves o3
    await api.post_events(event(id="e5", order_id="o1"))  # already in P: no move
    await api.post_events(event("call.incoming", id="e6", order_id="o2"))
    return {"paid": paid}


async def test_events_newest_first_each_as_get_shows_it_without_its_trace(api):
    await _some_events(api)
    items, pages = await walk(api, "/api/events", limit="4")
    assert ids(items) == ["e6", "e5", "e4", "e3", "e2", "e1"] and pages == 2
    for item in items:
        shown = await api.get_event(item["id"])
        assert "trace" in shown and "trace" not in item
        assert item == {k: v for k, v in shown.items() if k != "trace"}
    assert items[-1]["moves"][0]["to"] == "P"
    assert sorted(items[-2]["order_ids"]) == ["o1", "o2"]


async def test_events_by_type_by_moved_and_by_order(api):
    await _some_events(api)

    async def listed(**params: str) -> list[str]:
        everything, _ = await walk(api, "/api/events", **params)
        paged, _ = await walk(api, "/api/events", limit="1", **params)
        assert everything == paged
        return ids(everything)

    assert await listed(type="payment.received") == ["e5", "e4", "e1"]
    assert await listed(moved="false") == ["e6", "e5", "e3", "e2"]
    assert await listed(moved="true") == ["e4", "e1"]
    assert await listed(moved="0", type="payment.received") == ["e5"]
    assert await listed(moved="1", type="call.missed") == []
    # by order: the events resolved to it, by id or by contact
    assert await listed(order_id="o1") == ["e5", "e2", "e1"]
    assert await listed(order_id="o2") == ["e6", "e2"]
    assert await listed(order_id="o1", moved="false") == ["e5", "e2"]
    assert await listed(order_id="o1", type="payment.received", moved="true") == ["e1"]
    assert await listed(order_id="o2", type="payment.received") == []


async def test_new_events_never_shift_the_pages_of_a_walk(api):
    await api.create_order("o1")
    for n in range(5):
        await api.post_events(event(id=f"e{n}", order_id="o1"))
    first = await api.call("GET", "/api/events", params={"limit": "2", "order_id": "o1"})
    for n in range(5, 8):
        await api.post_events(event(id=f"e{n}", order_id="o1"))
    rest, _ = await walk(api, "/api/events", limit="2", order_id="o1", cursor=first["next"])
    assert ids(first["items"]) + ids(rest) == ["e4", "e3", "e2", "e1", "e0"]


async def test_bad_event_list_parameters_are_422s_that_name_them(api):
    await _some_events(api)
    path = "/api/events"
    for limit in ("0", "501", "x", ""):
        await bad(api, path, "limit", limit=limit)
    await bad(api, "/api/moves", "limit", limit="9" * 5000)  # the feed's limit, too
    for moved in ("maybe", "", "2", "truee"):
        await bad(api, path, "moved", moved=moved)
    message = await bad(api, path, "type", "unknown_event_type", type="payment.recieved")
    assert "payment.received" in message  # the known types are named
    await bad(api, path, "order_id", "unknown_order", order_id="nope")
    await bad(api, path, "cursor", "invalid_cursor", cursor="bm9wZQ")
    cursor = (await api.call("GET", path, params={"limit": "1", "type": "call.missed"}))["next"]
    await bad(api, path, "cursor", "invalid_cursor", cursor=cursor)  # the filters changed
    await bad(api, path, "cursor", "invalid_cursor", cursor=cursor, type="payment.received")
    page = await api.call("GET", path, params={"cursor": cursor, "type": "call.missed"})
    assert ids(page["items"]) == ["e2"]


async def test_events_of_a_type_no_plugin_registers_now_are_still_listed(make_client):
    api = Api(await make_client(enable=("payment", "calls")))
    await api.create_order("o1")
    await api.post_events(event("call.missed", id="e1", order_id="o1"))
    api = Api(await make_client(enable=("payment",)))  # the same database, calls away
    page = await api.call("GET", "/api/events", params={"type": "call.missed"})
    assert ids(page["items"]) == ["e1"]
    await bad(api, "/api/events", "type", "unknown_event_type", type="call.incoming")


# --- the timeline ------------------------------------------------------------------------


async def test_the_timeline_pages_oldest_first_as_the_whole_list_reads(api):
    await _some_events(api)
    await api.patch_order("o1", {"status": "F"})
    whole = await api.timeline("o1")
    assert [e["kind"] for e in whole] == [
        "created",
        "event",
        "status_changed",
        "event",
        "event",
        "status_changed",
    ]
    path = "/api/orders/o1/timeline"
    for limit in ("1", "4", "6", "500"):
        walked, pages = await walk(api, path, limit=limit)
        assert walked == whole and pages == -(-len(whole) // int(limit))
    first = await api.call("GET", path, params={"limit": "4"})
    rest = await api.call("GET", path, params={"cursor": first["next"]})  # the default limit
    assert first["items"] + rest["items"] == whole and rest["next"] is None
    await api.patch_order("o1", {"status": "D"})  # a later entry shows on a later page
    rest = await api.call("GET", path, params={"cursor": first["next"], "limit": "4"})
    assert rest["items"][-1]["kind"] == "status_changed" and rest["items"][-1]["to"] == "D"


async def test_bad_timeline_parameters(api):
    await api.create_order("o1")
    await api.create_order("o2")
    await api.patch_order("o1", {"status": "P"})
    path = "/api/orders/o1/timeline"
    for limit in ("0", "501", "x"):
        await bad(api, path, "limit", limit=limit)
    cursor = (await api.call("GET", path, params={"limit": "1"}))["next"]
    await bad(api, "/api/orders/o2/timeline", "cursor", "invalid_cursor", cursor=cursor)
    await bad(api, path, "cursor", "invalid_cursor", cursor=cursor + "x")
    error = await api.error("GET", "/api/orders/nope/timeline", expect=404, params={"limit": "1"})
    assert "nope" in error["message"]


# --- the plans: every list reads an index, never the whole table ---------------------------

PLAN_CASES = {
    "orders": lambda: lists.orders_statement(50),
    "orders, deep": lambda: lists.orders_statement(50, ("2026-11-27T10:00:00.000000Z", "o7")),
    "orders by status": lambda: lists.orders_statement(50, None, "P"),
    "orders by status, deep": lambda: lists.orders_statement(50, ("2026", "o7"), "P"),
    "events": lambda: lists.events_statement(50),
    "events, deep": lambda: lists.events_statement(50, 1000),
    "events by type": lambda: lists.events_statement(50, 1000, "call.missed"),
    "events by moved": lambda: lists.events_statement(50, 1000, None, False),
    "events by type and moved": lambda: lists.events_statement(50, 1000, "call.missed", True),
    "events by order": lambda: lists.events_statement(50, 1000, None, None, "o1"),
    "events by order, type and moved": lambda: lists.events_statement(50, 9, "x", False, "o1"),
    "timeline": lambda: lists.timeline_statement("o1", 50, 1000),
}
SEARCH_CASES = {
    "orders by q": lambda: lists.orders_statement(
        50, None, None, lists.OrderSearch("o1", [("phone", "+14155550100"), ("email", "a@b.c")])
    ),
    "orders by q and status, deep": lambda: lists.orders_statement(
        50, ("2026", "o7"), "P", lists.OrderSearch("o1", [("email", "a@b.c")])
    ),
}
LIST_TABLES = ("orders", "events", "timeline", "order_identifiers")


async def _plan(api: Api, statement: Any, priced_out: tuple[str, ...]) -> list[str]:
    """The database's plan of ``statement``; on PostgreSQL with the ``priced_out`` plan
    nodes (``seqscan``, ``sort``...) made dear, so that a plan shows one only where
    nothing else can serve: on tables this small they are the cheapest otherwise."""
    async with api.client.app[DATABASE].read() as conn:
        literal = {"literal_binds": True}
        sql = str(statement.compile(dialect=conn.dialect, compile_kwargs=literal))
        if conn.dialect_name == "postgresql":
            for node in priced_out:
                await conn._query(f"SET LOCAL enable_{node} = off", (), False)
            _, rows, _ = await conn._query("EXPLAIN " + sql, (), True)
            return [str(row[0]) for row in rows]
        _, rows, _ = await conn._query("EXPLAIN QUERY PLAN " + sql, (), True)
        return [str(row[3]) for row in rows]


def _full_scans(plan: list[str]) -> list[str]:
    full = [line for line in plan if "Seq Scan" in line]  # PostgreSQL
    full += [line for line in plan if line.strip() in {f"SCAN {t}" for t in LIST_TABLES}]
    return full


@pytest.mark.parametrize("case", sorted(PLAN_CASES))
async def test_each_list_reads_its_rows_in_order_from_an_index(api, case):
    plan = await _plan(api, PLAN_CASES[case](), ("seqscan", "bitmapscan", "sort"))
    if case == "events" and plan == ["SCAN events"]:
        return  # SQLite: the table is the seq index (rowid), read backwards up to the limit
    assert not _full_scans(plan), plan
    sorts = [line for line in plan if "Sort" in line or "TEMP B-TREE" in line]
    assert not sorts, plan  # the index gives the list's order: a page stops early


@pytest.mark.parametrize("case", sorted(SEARCH_CASES))
async def test_a_search_finds_its_orders_by_primary_key(api, case):
    plan = await _plan(api, SEARCH_CASES[case](), ("seqscan",))
    assert not _full_scans(plan), plan
    assert any("orders_pkey" in line or "sqlite_autoindex_orders_1" in line for line in plan)
    walked = [line for line in plan if "ix_orders_" in line]
    assert not walked, plan  # never a whole status, nor every order, to find a few


# --- the upgrade ---------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def fresh_database_url(request: Any, tmp_path: Any) -> Any:
    """A database no migration has run on (the reused one keeps its migrations)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    require_postgres()
    async with temporary_postgres_database() as url:
        yield url


async def test_the_upgrade_to_0003_marks_the_stored_events_that_moved_orders(
    fresh_database_url, aiohttp_client
):
    """Events stored before ``events.moved`` existed are listed by it after the upgrade;
    the downgrade gives the schema of 0002 back."""
    database_url = fresh_database_url
    from alembic import command
    from sqlalchemy import text

    from statusflow.http import init_app
    from statusflow.store.database import alembic_config, in_transaction, migrate
    from statusflow.testing import settings_for

    def at(revision: str) -> Any:
        return lambda sync: command.upgrade(alembic_config(sync), revision)

    def stored(sync: Any) -> None:
        sync.execute(
            text(
                "INSERT INTO orders (id, status, doc, created_at, updated_at)"
                " VALUES ('o1', 'P', '{}', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')"
            )
        )
        insert = text(
            "INSERT INTO events (id, type, order_id, contact, data, received_at, result)"
            " VALUES (:id, 'payment.received', 'o1', '{}', '{}', '2026-01-01T00:00:00Z', :r)"
        )
        moved = '{"order_ids": ["o1"], "moves": [{"order_id": "o1", "from": "N", "to": "P"}]}'
        sync.execute(insert, {"id": "e1", "r": moved})
        sync.execute(insert, {"id": "e2", "r": '{"order_ids": ["o1"], "moves": []}'})
        sync.execute(insert, {"id": "e3", "r": '{"order_ids": [], "moves": []}'})

    def back(sync: Any) -> list[str]:
        command.downgrade(alembic_config(sync), "0002")
        return [r[0] for r in sync.execute(text("SELECT id FROM events ORDER BY seq"))]

    await in_transaction(database_url, at("0002"))
    await in_transaction(database_url, stored)
    await migrate(database_url)
    assert await in_transaction(database_url, back) == ["e1", "e2", "e3"]
    await migrate(database_url)  # and up again
    api = Api(await aiohttp_client(init_app(settings_for(database_url, enable=("payment",)))))
    listed = {}
    for moved in ("true", "false"):
        page = await api.call("GET", "/api/events", params={"moved": moved})
        listed[moved] = ids(page["items"])
    assert listed == {"true": ["e1"], "false": ["e3", "e2"]}
