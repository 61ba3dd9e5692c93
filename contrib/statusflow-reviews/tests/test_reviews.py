"""statusflow-reviews, installed, against a running statusflow (statusflow's pytest plugin).

The walk-through of the README, then each piece: the trigger types and their settings,
the ``matches`` operator (on review triggers and on built-in ones), its bounds against
hostile patterns, and the status sink's counts.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from statusflow_reviews import MAX_PATTERN, MAX_PROGRAM, MAX_SUBJECT

PIPELINE = [
    {"id": "N", "name": "New", "sort": 100, "semantics": "process"},
    {"id": "P", "name": "Paid", "sort": 150, "semantics": "process"},
    {"id": "S", "name": "Shipped", "sort": 175, "semantics": "process"},
    {"id": "F", "name": "Completed", "sort": 200, "semantics": "success"},
    {"id": "D", "name": "Canceled", "sort": 250, "semantics": "failure"},
    # after every other status: a review of a completed order moves it forward
    {"id": "A", "name": "Needs attention", "sort": 300, "semantics": "process"},
]
STATS = "/sources/reviews/stats"


async def reviews_app(statusflow_app: Any, **kwargs: Any) -> Any:
    """The reviews and payment plugins, with a "Needs attention" status added."""
    sf = await statusflow_app(plugins=["reviews", "payment"], **kwargs)
    statuses = await sf.call("PUT", "/api/statuses", PIPELINE)
    assert [s["id"] for s in statuses] == ["N", "P", "S", "F", "D", "A"]
    return sf


async def review(sf: Any, order_id: str, rating: Any, **fields: Any) -> Any:
    """Post a ``review.posted`` for an order; the result (or the error, with ``expect=``)."""
    expect = fields.pop("expect", 200)
    dry_run = fields.pop("dry_run", False)
    event_id = fields.pop("id", None)
    body: dict[str, Any] = {
        "type": "review.posted",
        "order_id": order_id,
        "data": {"rating": rating, **fields},
    }
    if event_id is not None:
        body["id"] = event_id
    return await sf.post_event(body, expect=expect, dry_run=dry_run)


async def stats(sf: Any) -> dict[str, Any]:
    response = await sf.client.get(STATS)
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def trigger_count(sf: Any) -> int:
    return len(await sf.call("GET", "/api/triggers"))


@pytest.mark.parametrize("statusflow_database", ["sqlite", "postgres"])
async def test_a_one_star_review_moves_the_order_to_needs_attention(statusflow_app):
    sf = await reviews_app(statusflow_app)
    await sf.create_order("1001", status="F")
    await sf.create_order("1002", status="S")
    negative = await sf.create_trigger("review.negative", "A", name="unhappy customer")
    positive = await sf.create_trigger("review.positive", "F")
    assert negative["active"] is True and negative["settings"] == {}

    result = await review(sf, "1001", 1, text="Arrived broken.", product_id="sku-42", id="r1")
    assert result["moves"] == [
        {"order_id": "1001", "from": "F", "to": "A", "trigger_id": negative["id"]}
    ]
    assert await sf.status_of("1001") == "A"
    entry = next(e for e in await sf.timeline("1001") if e["kind"] == "event")
    assert entry["type"] == "review.posted"
    assert entry["data"] == {"rating": 1, "text": "Arrived broken.", "product_id": "sku-42"}
    trace = (await sf.get_event("r1"))["trace"]
    assert [(t["trigger_id"], t["outcome"]) for t in trace] == [
        (negative["id"], "moved"),
        (positive["id"], "skipped"),
    ]
    assert trace[1]["reason"] == "settings do not match: rating is 1, trigger wants at least 4"

    # five stars (sent as 5.0, an integer to JSON) complete a shipped order
    result = await review(sf, "1002", 5.0)
    assert [m["to"] for m in result["moves"]] == ["F"]
    # three stars are neither
    await sf.create_order("1003", status="S")
    result = await review(sf, "1003", 3, dry_run=True)
    assert result["moves"] == []
    assert [t["reason"] for t in result["trace"]] == [
        "settings do not match: rating is 3, trigger wants at most 2",
        "settings do not match: rating is 3, trigger wants at least 4",
    ]
    assert await stats(sf) == {
        "moves": 2,
        "by_trigger_type": {"review.negative": 1, "review.positive": 1},
        "by_status": {"A": 1, "F": 1},
        "by_rating": {"1": 1, "2": 0, "3": 0, "4": 0, "5": 1},
    }


async def test_reviews_by_contact_and_the_settings_bounds(statusflow_app):
    sf = await reviews_app(statusflow_app)
    await sf.create_order("1001", status="S", contact={"emails": ["Ada@example.com"]})
    await sf.create_order("1002", status="F", contact={"emails": ["ada@example.com"]})
    trigger = await sf.create_trigger("review.negative", "A", settings={"max_rating": 3})
    # a contact reaches the client's open orders (not the completed one)
    body = {"type": "review.posted", "contact": {"email": "ADA@example.com"}, "data": {"rating": 3}}
    result = await sf.post_event(body)
    assert result["order_ids"] == ["1001"]
    assert result["moves"] == [
        {"order_id": "1001", "from": "S", "to": "A", "trigger_id": trigger["id"]}
    ]

    # settings out of range, of the wrong type, or unknown: 422, nothing stored
    bad_settings = [
        ("review.negative", {"max_rating": 0}),
        ("review.negative", {"max_rating": 6}),
        ("review.negative", {"max_rating": "2"}),
        ("review.negative", {"max_rating": 2.5}),
        ("review.negative", {"min_rating": 4}),
        ("review.positive", {"min_rating": 0}),
        ("review.positive", {"min_rating": 6}),
        ("review.positive", {"min_rating": None}),
    ]
    for type_, settings in bad_settings:
        body = {"type": type_, "status": "A", "settings": settings}
        answer = await sf.call("POST", "/api/triggers", body, expect=422)
        assert answer["error"]["code"] == "bad_settings", (type_, settings)
    assert await trigger_count(sf) == 1
    # the same through PATCH
    answer = await sf.call(
        "PATCH", f"/api/triggers/{trigger['id']}", {"settings": {"max_rating": 9}}, expect=422
    )
    assert "max_rating" in json.dumps(answer)
    assert (await sf.call("GET", f"/api/triggers/{trigger['id']}"))["settings"] == {"max_rating": 3}

    # a review needs a rating from 1 to 5
    events = await sf.event_count()
    for rating in (0, 6, 4.5, "5", None, True):
        await review(sf, "1002", rating, expect=422)
    await sf.post_event(type="review.posted", order_id="1002", data={"text": "x"}, expect=422)
    assert await sf.event_count() == events


async def test_matches_in_conditions_of_review_and_built_in_triggers(statusflow_app):
    sf = await reviews_app(statusflow_app)
    damaged = {"field": "event.text", "op": "matches", "value": r"(?i)\b(broken|damaged)\b"}
    trigger = await sf.create_trigger("review.negative", "A", conditions=[damaged])
    await sf.create_order("1001", status="F")
    await sf.create_order("1002", status="F")
    assert [m["to"] for m in (await review(sf, "1001", 1, text="It came DAMAGED"))["moves"]] == [
        "A"
    ]
    result = await review(sf, "1002", 1, text="Slow delivery", dry_run=True)
    assert result["moves"] == []
    assert result["trace"][0]["reason"] == (
        "condition failed: event.text matches '(?i)\\\\b(broken|damaged)\\\\b' "
        "(event.text is 'Slow delivery')"
    )
    # a missing field fails; a field that is not a string fails, saying why
    result = await review(sf, "1002", 1, dry_run=True)
    assert "event.text is missing" in result["trace"][0]["reason"]
    rating = {"field": "event.rating", "op": "matches", "value": "1"}
    await sf.call("PATCH", f"/api/triggers/{trigger['id']}", {"conditions": [rating]})
    result = await review(sf, "1002", 1, dry_run=True)
    assert "matches needs a string, the field is int" in result["trace"][0]["reason"]

    # on a built-in trigger type, against the event's data and the order's fields
    card = [
        {"field": "event.method", "op": "matches", "value": "^(card|apple_pay)$"},
        {"field": "fields.channel", "op": "matches", "value": "^web"},
    ]
    paid = await sf.create_trigger("payment.received", "P", conditions=card)
    await sf.create_order("2001", fields={"channel": "web-eu"})
    await sf.create_order("2002", fields={"channel": "web-us"})
    await sf.create_order("2003", fields={"channel": "phone"})
    payment = {"type": "payment.received", "data": {"amount": 10, "method": "card"}}
    assert (await sf.post_event(payment, order_id="2001"))["moves"] == [
        {"order_id": "2001", "from": "N", "to": "P", "trigger_id": paid["id"]}
    ]
    transfer = {**payment, "data": {"amount": 10, "method": "bank_transfer"}}
    assert (await sf.post_event(transfer, order_id="2002"))["moves"] == []
    assert (await sf.post_event(payment, order_id="2003"))["moves"] == []

    # patterns that are not RE2, too long, or not strings: 422, nothing stored
    count = await trigger_count(sf)
    for value in (
        "(unclosed",
        r"(a)\1",  # backreferences: not in RE2 (they need backtracking)
        "(?=lookahead)",
        "x{1001}",
        "[ab]*a[ab]{300}c",  # compiles to more than MAX_PROGRAM instructions
        "a" * (MAX_PATTERN + 1),
        "",
        5,
        ["a"],
    ):
        condition = {"field": "event.text", "op": "matches", "value": value}
        body = {"type": "review.negative", "status": "A", "conditions": [condition]}
        answer = await sf.call("POST", "/api/triggers", body, expect=422)
        assert "conditions/0" in answer["error"]["message"], value
    body = {"type": "review.negative", "status": "A", "conditions": [{**damaged, "value": "(x"}]}
    answer = await sf.call("POST", "/api/triggers", body, expect=422)
    assert "not a valid RE2 pattern: missing ): (x" in answer["error"]["message"]
    body["conditions"] = [{**damaged, "value": "(?:[ab]*a[ab]{20}){10}c"}]
    answer = await sf.call("POST", "/api/triggers", body, expect=422)
    assert f"at most {MAX_PROGRAM}" in answer["error"]["message"]
    assert await trigger_count(sf) == count


async def test_a_hostile_pattern_cannot_stall_the_server(statusflow_app):
    sf = await reviews_app(statusflow_app)
    hostile = [
        "(a+)+$",
        "(a|aa)+$",
        "(a*)*c",
        "^(([a-z])+.)+[A-Z]([a-z])+$",
        "[ab]*a[ab]{190}c",  # a large program: a DFA too big to cache
    ]
    for pattern in hostile:
        condition = {"field": "event.text", "op": "matches", "value": pattern}
        await sf.create_trigger("review.negative", "A", conditions=[condition])
    await sf.create_order("1001")
    # the first four would take Python's re longer than the age of the universe here
    text = "ab" * (MAX_SUBJECT // 2 - 1) + "a!"
    # a guard against a hang, not a speed figure: backtracking would never end
    result = await asyncio.wait_for(review(sf, "1001", 1, text=text, dry_run=True), 60)
    assert result["moves"] == []
    assert all(
        t["reason"].startswith("condition failed: event.text matches") for t in result["trace"]
    )
    assert len(result["trace"]) == len(hostile)

    # a longer string fails the condition instead of being searched
    long_note = {"field": "fields.note", "op": "matches", "value": "urgent"}
    await sf.create_trigger("review.negative", "S", conditions=[long_note])
    await sf.create_order("1002", fields={"note": "urgent " * (MAX_SUBJECT // 7 + 1)})
    result = await review(sf, "1002", 1, dry_run=True)
    reasons = [t["reason"] for t in result["trace"]]
    assert f"(the string is longer than {MAX_SUBJECT} characters)" in reasons[-1]
    await sf.create_order("1003", fields={"note": "urgent: call back"})
    assert [m["to"] for m in (await review(sf, "1003", 2))["moves"]] == ["S"]


async def test_the_stats_count_only_moves_of_review_triggers_on_every_instance(statusflow_app):
    sf = await reviews_app(statusflow_app)
    empty = await stats(sf)
    assert empty["moves"] == 0 and empty["by_trigger_type"] == {
        "review.negative": 0,
        "review.positive": 0,
    }
    await sf.create_trigger("review.negative", "A")
    await sf.create_trigger("review.positive", "F")
    await sf.create_trigger("payment.received", "P")
    for order_id in ("1", "2", "3", "4"):
        await sf.create_order(order_id, status="S")
    await review(sf, "1", 2, id="a")
    await review(sf, "1", 2, id="a")  # a duplicate: counted once
    await review(sf, "2", 1, dry_run=True)  # a dry run: not counted
    await review(sf, "3", 4)
    await review(sf, "4", 3)  # no move
    await sf.post_event(type="payment.received", order_id="2", data={"amount": 5})  # not a review
    await sf.call("PATCH", "/api/orders/4", {"status": "A"})  # manual: not counted
    expected = {
        "moves": 2,
        "by_trigger_type": {"review.negative": 1, "review.positive": 1},
        "by_status": {"A": 1, "F": 1},
        "by_rating": {"1": 0, "2": 1, "3": 0, "4": 1, "5": 0},
    }
    assert await stats(sf) == expected
    # the counts are in the database: another instance on it answers the same
    other = await statusflow_app(plugins=["reviews", "payment"], database_url=sf.database_url)
    assert await stats(other) == expected
    await review(other, "2", 1)
    assert (await stats(sf))["moves"] == 3


async def test_listed_with_its_types_and_disabled_like_any_plugin(statusflow_app, statusflow_cli):
    sf = await statusflow_app(plugins=["reviews"])
    assert (await sf.plugins())["reviews"] == {
        "name": "reviews",
        "distribution": "statusflow-reviews",
        "version": "0.1.0",
        "trigger_types": ["review.negative", "review.positive"],
        "enabled": True,
    }
    types = {t["type"]: t for t in await sf.call("GET", "/api/trigger-types")}
    assert types["review.negative"]["plugin"] == "reviews"
    assert types["review.negative"]["events"] == ["review.posted"]
    schema = types["review.positive"]["settings_schema"]["properties"]["min_rating"]
    assert (schema["minimum"], schema["maximum"], schema["default"]) == (1, 5, 4)
    openapi = await sf.call("GET", "/api/openapi.json")
    assert "get" in openapi["paths"][STATS]
    validator = pytest.importorskip("openapi_spec_validator")  # statusflow's test extra
    validator.validate(openapi)

    off = await statusflow_app(plugins=["reviews"], config={"plugins": {"disable": ["reviews"]}})
    assert (await off.plugins())["reviews"]["enabled"] is False
    assert "review.negative" not in {t["type"] for t in await off.call("GET", "/api/trigger-types")}
    assert (await off.client.get(STATS)).status == 404
    await off.create_order("1")
    await review(off, "1", 1, expect=422)
    result = statusflow_cli("plugins", "--json")
    assert result.returncode == 0, result.stderr
    listed = {p["name"]: p for p in json.loads(result.stdout)}["reviews"]
    assert listed["enabled"] is True and listed["distribution"] == "statusflow-reviews"
