"""Choosing by classes of alike triggers gives exactly what choosing trigger by trigger gives.

:mod:`statusflow.engine.decide` evaluates each class of alike triggers once and keeps the trace
as groups. Here random trigger sets (real plugins, real conditions) are decided both
ways, for random orders and events, and the winners and the expanded traces must be
identical; and ``match`` runs once per distinct settings, however many triggers share them.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import pytest

from statusflow.engine.decide import (
    PACKED,
    CompiledTrigger,
    choose_move,
    classify,
    compile_trigger,
    expand,
    failed_condition,
    group_ids,
    pack_ids,
    trace_of,
    unpack_ids,
)
from statusflow.engine.pipeline import StatusInfo
from statusflow.registry import build_registry, make_plugin_manager
from statusflow.store.statements import OrderState
from statusflow.types import Event, Match, TriggerView

STATUSES = {
    "N": StatusInfo("N", 100, False),
    "P": StatusInfo("P", 150, False),
    "S": StatusInfo("S", 175, False),
    "F": StatusInfo("F", 200, True),
}
CONDITIONS = (
    [],
    [],
    [{"field": "amount", "op": "gte", "value": 50}],
    [{"field": "currency", "op": "eq", "value": "USD"}],
    [{"field": "fields.channel", "op": "in", "value": ["web", "phone"]}],
)


def reference_choose(
    order: OrderState, event: Event, triggers: Sequence[CompiledTrigger]
) -> tuple[CompiledTrigger | None, list[dict[str, Any]]]:
    """Contract §2 trigger by trigger, as the engine did before classes."""
    current = STATUSES.get(order.status)
    trace: dict[int, dict[str, Any]] = {}
    eligible = []

    def entry(trigger_id: int, outcome: str, reason: str) -> dict[str, Any]:
        return {
            "order_id": order.id,
            "trigger_id": trigger_id,
            "outcome": outcome,
            "reason": reason,
        }

    for trigger in triggers:
        view = trigger.view
        if not view.enabled:
            trace[view.id] = entry(view.id, "skipped", "trigger is disabled")
            continue
        match = trigger.trigger_type.match(view.settings, event)
        if not match.matched:
            trace[view.id] = entry(view.id, "skipped", f"settings do not match: {match.reason}")
            continue
        failure = failed_condition(trigger.conditions, order.status, order.doc, event)
        if failure is not None:
            trace[view.id] = entry(view.id, "skipped", failure)
            continue
        target = STATUSES[view.status]
        if view.status == order.status:
            reason = f"order is already in status {view.status!r}"
            trace[view.id] = entry(view.id, "skipped", reason)
            continue
        if current is not None and target.sort < current.sort and not view.allow_backwards:
            reason = (
                f"backwards not allowed: {view.status!r} (sort {target.sort}) comes before "
                f"{order.status!r} (sort {current.sort})"
            )
            trace[view.id] = entry(view.id, "skipped", reason)
            continue
        eligible.append((target.sort, view.id, trigger))
    winner = None
    if eligible:
        eligible.sort(key=lambda item: (item[0], item[1]))
        winner = eligible[0][2]
        moved = f"moved from {order.status!r} to {winner.view.status!r}"
        trace[winner.view.id] = entry(winner.view.id, "moved", moved)
        lost = f"lost to trigger {winner.view.id} (its target {winner.view.status!r} comes first)"
        for _sort, trigger_id, _trigger in eligible[1:]:
            trace[trigger_id] = entry(trigger_id, "skipped", lost)
    return winner, [trace[t.view.id] for t in triggers]


@pytest.fixture(scope="module")
def registry() -> Any:
    return build_registry(make_plugin_manager())


def random_triggers(rng: random.Random, registry: Any, count: int) -> list[CompiledTrigger]:
    triggers = []
    for trigger_id in range(1, count + 1):
        settings: dict[str, Any] = rng.choice([{}, {}, {"line": "1"}, {"line": "2"}])
        view = TriggerView(
            id=trigger_id,
            type="call.incoming",
            status=rng.choice(list(STATUSES)),
            name="",
            allow_backwards=rng.random() < 0.2,
            enabled=rng.random() < 0.9,
            settings=settings,
            conditions=tuple(rng.choice(CONDITIONS)),
            secret=f"s{trigger_id}",
        )
        compiled = compile_trigger(view, registry)
        assert compiled is not None
        triggers.append(compiled)
    return triggers


def random_order(rng: random.Random, index: int) -> OrderState:
    doc = {
        "amount": rng.choice([10, 50, 100]),
        "currency": rng.choice(["USD", "EUR"]),
        "fields": {"channel": rng.choice(["web", "shop"])},
    }
    return OrderState(f"o{index}", rng.choice(list(STATUSES)), orjson.dumps(doc).decode())


@pytest.mark.parametrize("seed", range(60))
def test_classes_decide_as_trigger_by_trigger(seed: int, registry: Any) -> None:
    rng = random.Random(seed)
    triggers = random_triggers(rng, registry, rng.randint(1, 60))
    classes = classify(triggers)
    assert sum(len(c.ids) for c in classes) == len(triggers)
    for step in range(5):
        event = Event(
            id=f"e{step}",
            type="call.incoming",
            order_id=None,
            contact={"phone": "+15550000001"},
            occurred_at=None,
            data={"line": rng.choice(["1", "2", "3"])},
            facts={},
        )
        memo: dict[tuple[str, bytes], Match | str] = {}
        groups: list[Any] = []
        expected: list[dict[str, Any]] = []
        for index in range(rng.randint(1, 3)):
            order = random_order(rng, index)
            winner, order_groups = choose_move(order, event, classes, STATUSES, memo)
            groups.extend(order_groups)
            expected_winner, expected_trace = reference_choose(order, event, triggers)
            expected.extend(expected_trace)
            assert (winner and winner.view.id) == (expected_winner and expected_winner.view.id)
        assert expand(groups) == expected
        # stored as JSON and read back, the groups give the same trace
        stored = orjson.loads(orjson.dumps({"trace_groups": groups}))
        assert trace_of(stored) == expected


def test_match_runs_once_per_distinct_settings(registry: Any) -> None:
    calls: list[Mapping[str, Any]] = []
    triggers = random_triggers(random.Random(7), registry, 300)
    real_match = triggers[0].trigger_type.match

    def counting(settings: Mapping[str, Any], event: Event) -> Match:
        calls.append(settings)
        return real_match(settings, event)

    counted = dataclasses.replace(triggers[0].trigger_type, match=counting)
    triggers = [dataclasses.replace(t, trigger_type=counted) for t in triggers]
    classes = classify(triggers)
    # 300 triggers, at most 3 settings x 4 targets x 2 x 2 (backwards, enabled) x 4 conditions
    assert len(classes) <= 3 * 4 * 2 * 2 * 4 < len(triggers)
    event = Event("e", "call.incoming", None, {"phone": "+1555"}, None, {"line": "1"}, {})
    memo: dict[tuple[str, bytes], Match | str] = {}
    for index in range(3):
        choose_move(random_order(random.Random(index), index), event, classes, STATUSES, memo)
    enabled_settings = {
        orjson.dumps(t.view.settings, option=orjson.OPT_SORT_KEYS)
        for t in triggers
        if t.view.enabled
    }
    assert len(calls) == len(enabled_settings)  # {}, line 1, line 2: three calls, not 900


def test_results_stored_before_classes_still_read() -> None:
    legacy = {"trace": [{"order_id": "o", "trigger_id": 1, "outcome": "moved", "reason": "r"}]}
    assert trace_of(legacy) == legacy["trace"]


def test_packed_trigger_ids_read_back_as_written() -> None:
    rng = random.Random(3)
    for _ in range(500):
        ids = sorted(rng.sample(range(1, 10**7), rng.randint(0, 60)))
        if rng.random() < 0.2:
            rng.shuffle(ids)  # any order, negative steps too
        assert unpack_ids(pack_ids(ids)) == ids
    with pytest.raises(ValueError):
        unpack_ids("12,13")
    with pytest.raises(ValueError):
        unpack_ids(PACKED + "gA")  # a number cut short


def test_a_big_class_is_written_packed_and_a_small_one_plain(registry: Any) -> None:
    """A trace stays complete but short: a class of many triggers is one packed string in
    the stored groups; a class of one is its plain id. Groups stored before the packing
    (plain ids only) read the same."""
    triggers = random_triggers(random.Random(11), registry, 400)
    classes = classify(triggers)
    big = max(classes, key=lambda c: len(c.ids))
    single = min(classes, key=lambda c: len(c.ids))
    assert len(big.ids) > 5 and big.trace_ids == (pack_ids(big.ids),)
    assert len(single.ids) == 1 and single.trace_ids == single.ids
    order = random_order(random.Random(1), 0)
    event = Event("e", "call.incoming", None, {"phone": "+1555"}, None, {"line": "1"}, {})
    _, groups = choose_move(order, event, classes, STATUSES, {})
    plain = [(o, outcome, reason, list(group_ids(ids))) for o, outcome, reason, ids in groups]
    assert trace_of({"trace_groups": groups}) == trace_of({"trace_groups": plain})
    assert len(trace_of({"trace_groups": groups})) == len(triggers)
    assert len(orjson.dumps(groups)) < len(orjson.dumps(plain))
