"""The series' ring pipeline (``bench/dataset.py``): the same moves per event at every point.

The load generator's events are decided in this process by the engine's own choosing
(:mod:`statusflow.engine.decide`, the installed plugins' trigger types, real
conditions), order by order, without a server; and event data made from a type's data
schema is valid against it.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from typing import Any

import jsonschema
import orjson
import pytest

from bench import report
from bench.dataset import (
    AREA_CODES,
    RING_SHARE,
    EventFactory,
    Pipeline,
    Template,
    build_mix,
    data_for,
    plan_orders,
    plan_ring,
    plan_ring_triggers,
    ring_mix,
)
from statusflow.engine.decide import TriggerClass, choose_move, classify, compile_trigger
from statusflow.engine.pipeline import StatusInfo
from statusflow.registry import Registry, build_registry, make_plugin_manager
from statusflow.store.statements import OrderState
from statusflow.types import Event, TriggerView

PIPELINE = Pipeline(("N", "P", "S"), ("F",), ("D",))
STATUSES = {
    "N": StatusInfo("N", 100, False),
    "P": StatusInfo("P", 150, False),
    "S": StatusInfo("S", 175, False),
    "F": StatusInfo("F", 200, True),
    "D": StatusInfo("D", 250, True),
}
PRIVATE_EVENTS = {"webhook.called"}


@pytest.fixture(scope="module")
def registry() -> Registry:
    return build_registry(make_plugin_manager())


def trigger_types(registry: Registry) -> list[dict[str, Any]]:
    """The trigger types as ``GET /api/trigger-types`` lists them."""
    return [
        {"type": code, "events": list(t.events), "settings_schema": dict(t.settings_schema)}
        for code, t in sorted(registry.trigger_types.items())
    ]


def contact_of(contact: Mapping[str, str]) -> int:
    """The contact index an event's contact names (see ``bench.dataset``'s identifiers)."""
    if "email" in contact:
        return int(contact["email"].lower().removeprefix("customer").split("@")[0])
    if "visitor_id" in contact:
        return int(contact["visitor_id"].removeprefix("vis-"), 16)
    if "contact_id" in contact:
        return int(contact["contact_id"].removeprefix("cust-"))
    digits = re.sub(r"\D", "", contact["phone"])[-10:]
    area, exchange, line = int(digits[:3]), int(digits[3:6]), int(digits[6:])
    return ((exchange - 200) * 10_000 + line) * len(AREA_CODES) + AREA_CODES.index(area)


def classes_by_event(
    registry: Registry, bodies: list[dict[str, Any]]
) -> dict[str, tuple[TriggerClass, ...]]:
    """The planned triggers (ids in creation order) compiled and classed per event type."""
    compiled = []
    for number, body in enumerate(bodies, 1):
        view = TriggerView(
            id=number,
            type=body["type"],
            status=body["status"],
            name=body["name"],
            allow_backwards=body.get("allow_backwards", False),
            enabled=body.get("enabled", True),
            settings=body["settings"],
            conditions=tuple(body.get("conditions", ())),
            secret=f"s{number}",
        )
        trigger = compile_trigger(view, registry)
        assert trigger is not None, body
        compiled.append(trigger)
    return {
        event: classify([t for t in compiled if t.view.type in codes])
        for event, codes in registry.triggers_by_event.items()
    }


def moves_per_event(
    registry: Registry, triggers: int, orders: int, events: int = 5_000
) -> tuple[float, set[int]]:
    """Moves per stored event of a series point, decided in order; and the winners' ids."""
    types = trigger_types(registry)
    accepted = sorted(set(registry.event_types) - PRIVATE_EVENTS)
    schemas = {code: dict(t.data_schema) for code, t in registry.event_types.items()}
    templates, _notes = build_mix(accepted, data_schemas=schemas)
    ring = plan_ring(types, templates, PIPELINE)
    templates = ring_mix(templates, ring)
    classes = classes_by_event(registry, plan_ring_triggers(types, PIPELINE, ring, triggers, 1))
    contacts, planned = plan_orders(orders, PIPELINE, 1, ring=True)
    state: dict[str, OrderState] = {}
    by_contact: dict[int, list[str]] = {}
    for seed_order in planned:
        state[seed_order.id] = OrderState(
            seed_order.id, seed_order.status, orjson.dumps(seed_order.doc).decode()
        )
        by_contact.setdefault(seed_order.contact, []).append(seed_order.id)
    factory = EventFactory(templates, orders=orders, contacts=contacts, seed=1, worker=0, tag="t")
    moves, stored, winners = 0, 0, set()
    while stored < events:
        event_type, body, duplicate = factory.next()
        if duplicate:  # answered from the stored result: not stored again, moves nothing
            continue
        stored += 1
        sent = orjson.loads(body)
        named, contact = sent.get("order_id"), sent.get("contact", {})
        event = Event(sent["id"], event_type, named, contact, None, sent.get("data", {}))
        ids = [named] if named else by_contact.get(contact_of(contact), [])
        memo: dict[Any, Any] = {}
        for order_id in ids:
            order = state[order_id]
            winner, _trace = choose_move(order, event, classes.get(event_type, ()), STATUSES, memo)
            if winner is not None:
                moves += 1
                winners.add(winner.view.id)
                order.status = winner.view.status
    return moves / stored, winners


def test_the_ring_gives_the_same_moves_per_event_at_two_points(registry: Registry) -> None:
    small, small_winners = moves_per_event(registry, triggers=10, orders=1_000)
    large, large_winners = moves_per_event(registry, triggers=1_000, orders=10_000)
    assert abs(small - RING_SHARE) < 0.02, small
    assert abs(large - RING_SHARE) < 0.02, large
    assert abs(small - large) < 0.02, (small, large)
    ring_ids = {1, 2, 3}  # the ring's triggers come first; no other one ever wins
    assert small_winners == ring_ids
    assert large_winners == ring_ids


def test_event_data_from_a_data_schema_is_valid() -> None:
    schema = {
        "type": "object",
        "required": ["rating"],
        "properties": {
            "rating": {"type": "integer", "minimum": 1, "maximum": 5},
            "text": {"type": "string", "maxLength": 20000},
            "score": {"type": "number", "minimum": 0.5, "maximum": 2},
            "kind": {"enum": ["a", "b"]},
            "where": {
                "type": "object",
                "required": ["id"],
                "properties": {"id": {"type": "string", "minLength": 1}},
            },
        },
    }
    rng = random.Random(4)
    for _ in range(200):
        data = data_for(schema, rng)
        jsonschema.validate(data, schema)
        assert "rating" in data
    mix, notes = build_mix(["payment.received", "x.rated"], data_schemas={"x.rated": schema})
    made = [t for t in mix if t.type == "x.rated"]
    assert {t.mode for t in made} == {"order", "email"}
    assert all(t.data_schema == schema for t in made)
    assert "x.rated" in notes[0]
    template = Template("x.rated", "order", 1.0, data_schema=schema)
    factory = EventFactory([template], orders=5, contacts=5, seed=1, worker=0, tag="t")
    jsonschema.validate(orjson.loads(factory.next()[1])["data"], schema)


def series_with(cpu_ms: Mapping[tuple[str, int], float], design: str = "ring") -> dict[str, Any]:
    """A saved series whose points took ``cpu_ms`` of server CPU per request, 0.1 moves each."""
    points = [
        {
            "dimension": dimension,
            "value": value,
            "engine": {
                "requests": 10_000,
                "cpu_seconds": ms * 10,
                "stored": {"events": 10_000, "moves": 1_000},
            },
        }
        for (dimension, value), ms in cpu_ms.items()
    ]
    return {"points": points, "design": design, "this_run": True}


def test_the_cpu_per_event_targets() -> None:
    series = series_with(
        {
            ("triggers", 10): 0.40,
            ("triggers", 10_000): 0.46,
            ("orders", 1_000): 0.40,
            ("orders", 100_000): 0.44,
            ("orders", 1_000_000): 0.52,
        }
    )
    triggers, orders = report.evaluate_targets([], series, None)[3:5]
    assert triggers["status"] == report.MET
    assert triggers["value"].startswith("0.400 -> 0.460 ms/event (+15%) from 10 to 10,000")
    assert "moves/event 0.10 and 0.10" in triggers["value"]
    assert orders["status"] == report.NOT_MET
    assert "(+30%)" in orders["value"]
    quick = series_with({("triggers", 10): 0.40, ("triggers", 1_000): 0.41})
    assert report.evaluate_targets([], quick, None)[3]["status"] == report.NOT_MEASURED
    older = series_with({("triggers", 10): 0.40, ("triggers", 10_000): 0.41}, design="")
    assert "earlier design" in report.evaluate_targets([], older, None)[3]["value"]
