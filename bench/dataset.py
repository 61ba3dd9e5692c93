"""The benchmark's synthetic store: contacts, orders, triggers and the event mix.

Everything is derived from integers and seeded random generators, so the seeding side
(:mod:`bench.seed`) and the load side (:mod:`bench.load`) agree on which phone, email
or visitor belongs to which contact without sharing any state but a few counts.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import orjson

ORDER_ID_BASE = 100_000
AREA_CODES = (201, 212, 213, 305, 312, 404, 415, 503, 512, 617, 646, 702, 713, 718, 773, 917)
SEEDED_AT = "2026-01-01T00:00:00.000000Z"

# --- contacts ------------------------------------------------------------------------


def order_id(index: int) -> str:
    """The id of the ``index``-th seeded order."""
    return str(ORDER_ID_BASE + index)


def phone_parts(contact: int) -> tuple[int, int, int]:
    """Area code, exchange and line number of a contact's (US) phone; unique per contact."""
    area = AREA_CODES[contact % len(AREA_CODES)]
    rest = contact // len(AREA_CODES)
    return area, 200 + (rest // 10_000) % 800, rest % 10_000


def phone_e164(contact: int) -> str:
    """A contact's phone as the kernel stores it (E.164)."""
    area, exchange, line = phone_parts(contact)
    return f"+1{area}{exchange:03d}{line:04d}"


PHONE_FORMATS: tuple[Callable[[int, int, int], str], ...] = (
    lambda a, e, n: f"+1{a}{e:03d}{n:04d}",
    lambda a, e, n: f"+1 ({a}) {e:03d}-{n:04d}",
    lambda a, e, n: f"({a}) {e:03d}-{n:04d}",
    lambda a, e, n: f"{a}.{e:03d}.{n:04d}",
    lambda a, e, n: f"1-{a}-{e:03d}-{n:04d}",
    lambda a, e, n: f"+1 {a} {e:03d} {n:04d}",
)


def phone_as_sent(contact: int, rng: random.Random) -> str:
    """A contact's phone in one of the formats a telephony system might send."""
    return rng.choice(PHONE_FORMATS)(*phone_parts(contact))


def email(contact: int) -> str:
    """A contact's email, normalised (lower case)."""
    return f"customer{contact}@example.com"


def email_as_sent(contact: int, rng: random.Random) -> str:
    """A contact's email, sometimes with capitals (emails compare case-insensitively)."""
    return email(contact) if rng.random() < 0.7 else f"Customer{contact}@Example.COM"


def contact_id(contact: int) -> str:
    """A contact's CRM id."""
    return f"cust-{contact}"


def visitor_id(contact: int) -> str:
    """A contact's web visitor id."""
    return f"vis-{contact:08x}"


# --- orders --------------------------------------------------------------------------

#: orders per contact and how often: most contacts have one order, some several.
GROUP_SIZES = ((1, 60), (2, 25), (3, 6), (4, 3), (5, 3), (8, 2), (12, 1))


@dataclass(frozen=True)
class Pipeline:
    """The statuses the benchmark needs to know, from ``GET /api/statuses``."""

    open: tuple[str, ...]  # "process" statuses, lowest sort first
    success: tuple[str, ...]
    failure: tuple[str, ...]

    @classmethod
    def from_api(cls, statuses: Sequence[Mapping[str, Any]]) -> Pipeline:
        """Build from the API's list of statuses (in ``sort`` order)."""
        ordered = sorted(statuses, key=lambda s: s["sort"])

        def pick(semantics: str) -> tuple[str, ...]:
            return tuple(s["id"] for s in ordered if s["semantics"] == semantics)

        return cls(pick("process"), pick("success"), pick("failure"))

    @property
    def lowest(self) -> str:
        """The status new orders start in."""
        return self.open[0]


def order_doc(index: int, contact: int, rng: random.Random) -> dict[str, Any]:
    """An order's ``doc`` exactly as ``POST /api/orders`` stores it (``None`` keys dropped)."""
    return {
        "responsible_id": f"u{index % 12}",
        "amount": round(rng.uniform(5, 500), 2),
        "currency": "USD" if rng.random() < 0.8 else "EUR",
        "contact": {
            "id": contact_id(contact),
            "name": f"Customer {contact}",
            "phones": [phone_e164(contact)],
            "emails": [email(contact)],
        },
        "visitor_ids": [visitor_id(contact)],
        "fields": {"channel": rng.choice(("web", "phone", "marketplace")), "priority": "normal"},
    }


def order_identifier_rows(order: str, contact: int) -> list[tuple[str, str, str]]:
    """``(order_id, kind, value)`` rows of :func:`order_doc`, in the kernel's order."""
    return [
        (order, "contact_id", contact_id(contact)),
        (order, "phone", phone_e164(contact)),
        (order, "email", email(contact)),
        (order, "visitor_id", visitor_id(contact)),
    ]


@dataclass(frozen=True)
class SeedOrder:
    """One order to seed."""

    id: str
    status: str
    contact: int
    doc: dict[str, Any]


def plan_orders(
    count: int,
    pipeline: Pipeline,
    seed: int,
    orders_per_contact: int | None = None,
    *,
    ring: bool = False,
) -> tuple[int, Iterator[SeedOrder]]:
    """How many contacts the orders use, and the orders (generated lazily).

    :param orders_per_contact: every contact gets exactly this many orders, all open
        (the fan-out series); ``None``: a realistic mix of group sizes and statuses.
    :param ring: every order in one of the open statuses, evenly (the series' ring
        pipeline, :func:`plan_ring_triggers`), none in a final one.
    """
    if orders_per_contact is not None:
        contacts = max(1, -(-count // orders_per_contact))
    else:
        sizes = _group_sizes(count, seed)
        contacts = len(sizes)

    def generate() -> Iterator[SeedOrder]:
        rng = random.Random(seed * 7919 + 1)
        open_weights = [max(1, 60 // (i + 1) ** 2) for i in range(len(pipeline.open))]
        final = pipeline.success + pipeline.failure
        if orders_per_contact is not None:
            for index in range(count):
                contact = index // orders_per_contact
                yield SeedOrder(
                    order_id(index), pipeline.lowest, contact, order_doc(index, contact, rng)
                )
            return
        index = 0
        for contact, size in enumerate(_group_sizes(count, seed)):
            for _ in range(size):
                if ring:
                    status = rng.choice(pipeline.open)
                elif final and rng.random() < 0.12:
                    status = rng.choice(final)
                else:
                    status = rng.choices(pipeline.open, open_weights)[0]
                yield SeedOrder(order_id(index), status, contact, order_doc(index, contact, rng))
                index += 1

    return contacts, generate()


def _group_sizes(count: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    sizes, weights = zip(*GROUP_SIZES, strict=True)
    groups: list[int] = []
    left = count
    while left > 0:
        size = min(left, rng.choices(sizes, weights)[0])
        groups.append(size)
        left -= size
    return groups


# --- triggers ------------------------------------------------------------------------

#: values for settings and event data, by field name; triggers pick from the same pools
#: as events so that some settings match and some do not.
VALUE_POOLS: dict[str, tuple[Any, ...]] = {
    "line": ("1", "2", "3"),
    "form_id": ("form-1", "form-2", "form-3", "form-4"),
    "channel_id": ("web", "telegram", "whatsapp"),
    "text": ("refund", "where is my order", "thanks"),
    "template_id": ("tpl-1", "tpl-2", "tpl-3", "tpl-4", "tpl-5"),
    "url": (
        "https://shop.example.com/checkout",
        "https://shop.example.com/products/",
        "https://shop.example.com/cart",
        "https://blog.example.com/",
    ),
    "responsible_id": tuple(f"u{i}" for i in range(12)),
    "delivery_id": ("dlv-1", "dlv-2", "dlv-3", "dlv-4", "dlv-5"),
}

CONDITION_SETS: tuple[tuple[dict[str, Any], ...], ...] = (
    ({"field": "amount", "op": "gte", "value": 50},),
    ({"field": "currency", "op": "eq", "value": "USD"},),
    ({"field": "fields.channel", "op": "in", "value": ["web", "phone"]},),
    ({"field": "responsible_id", "op": "ne", "value": "u0"},),
    ({"field": "event.amount", "op": "exists", "value": True},),
    (
        {"field": "amount", "op": "lt", "value": 400},
        {"field": "fields.priority", "op": "eq", "value": "normal"},
    ),
)


def settings_for(
    schema: Mapping[str, Any], rng: random.Random, optional_share: float
) -> dict[str, Any]:
    """Settings valid against a trigger type's ``settings_schema``.

    Required properties are always filled; optional ones only with ``optional_share``.
    Values come from :data:`VALUE_POOLS` by name, else from the schema (enum, type).
    """
    properties: Mapping[str, Any] = schema.get("properties") or {}
    required = set(schema.get("required") or ())
    fill_optional = rng.random() < optional_share
    settings: dict[str, Any] = {}
    for name, prop in properties.items():
        if name not in required and not fill_optional:
            continue
        if name not in required and len(properties) > 1 and rng.random() < 0.5:
            continue  # with several optional settings, narrow by some of them only
        settings[name] = _value_for(name, prop if isinstance(prop, Mapping) else {}, rng)
    return settings


def data_for(schema: Mapping[str, Any], rng: random.Random) -> dict[str, Any]:
    """Event ``data`` valid against an event type's ``data_schema`` (for types the mix
    has no :func:`event_data` for): required properties always, optional ones half the
    time, numbers spread over their range, nested objects filled the same way."""
    properties: Mapping[str, Any] = schema.get("properties") or {}
    required = set(schema.get("required") or ())
    data: dict[str, Any] = {}
    for name, prop in properties.items():
        if name in required or rng.random() < 0.5:
            data[name] = _value_for(name, prop if isinstance(prop, Mapping) else {}, rng, True)
    return data


def _value_for(name: str, prop: Mapping[str, Any], rng: random.Random, spread: bool = False) -> Any:
    if prop.get("enum"):
        return rng.choice(list(prop["enum"]))
    if "const" in prop:
        return prop["const"]
    kind = prop.get("type", "string")
    kinds = kind if isinstance(kind, list) else [kind]
    if "string" in kinds:
        return rng.choice(VALUE_POOLS.get(name, (f"bench-{name}",)))
    if spread and ("integer" in kinds or "number" in kinds):
        return _number_in(prop, rng, "integer" in kinds)
    if spread and "object" in kinds:
        return data_for(prop, rng)
    if "integer" in kinds:
        return max(1, int(prop.get("minimum", 1)))
    if "number" in kinds:
        return float(prop.get("minimum", 1))
    if "boolean" in kinds:
        return True
    if "array" in kinds:
        return []
    return rng.choice(VALUE_POOLS.get(name, (f"bench-{name}",)))


def _number_in(prop: Mapping[str, Any], rng: random.Random, integer: bool) -> int | float:
    """A number within the property's ``minimum``/``maximum`` (1 to 100 when unbounded)."""
    low = prop.get("minimum", 1)
    high = prop.get("maximum", max(low, 1) * 100)
    if integer:
        return rng.randint(int(low), int(high))
    return round(rng.uniform(float(low), float(high)), 2)


def plan_triggers(
    trigger_types: Sequence[Mapping[str, Any]],
    pipeline: Pipeline,
    count: int,
    seed: int,
    *,
    final_targets: bool = True,
) -> list[dict[str, Any]]:
    """``count`` trigger bodies for ``POST /api/triggers``, spread over every type.

    Mostly forward targets among the open statuses; a few final targets (not with
    ``final_targets=False``, which keeps fan-out orders open), about 10% with
    conditions, 25% with optional settings, 2% allowing backwards moves, 2% disabled.
    """
    rng = random.Random(seed * 31 + 7)
    types = sorted(trigger_types, key=lambda t: t["type"])
    rng.shuffle(types)
    forward = pipeline.open[1:] or pipeline.open
    forward_weights = [max(1, 10 - 3 * i) for i in range(len(forward))]
    bodies = []
    for i in range(count):
        trigger_type = types[i % len(types)]
        code = trigger_type["type"]
        if "cancel" in code and pipeline.failure and final_targets:
            status = pipeline.failure[0]
        elif final_targets and pipeline.success and rng.random() < 0.05:
            status = pipeline.success[0]
        else:
            status = rng.choices(forward, forward_weights)[0]
        body: dict[str, Any] = {
            "type": code,
            "status": status,
            "name": f"bench {code} #{i + 1}",
            "settings": settings_for(trigger_type.get("settings_schema") or {}, rng, 0.25),
        }
        if rng.random() < 0.10:
            body["conditions"] = [dict(c) for c in rng.choice(CONDITION_SETS)]
        if rng.random() < 0.02:
            body["allow_backwards"] = True
            body["status"] = rng.choice(pipeline.open)
        if rng.random() < 0.02:
            body["enabled"] = False
        bodies.append(body)
    return bodies


# --- the event mix -------------------------------------------------------------------

ORDER = "order"
FANOUT_MODES = ("phone", "email", "visitor", "contact_id")


@dataclass(frozen=True)
class Template:
    """One kind of event of the mix: its type, how it names its order(s), its weight."""

    type: str
    mode: str  # "order" or one of FANOUT_MODES
    weight: float
    with_data: bool = True
    data_schema: dict[str, Any] | None = None
    """The type's ``data_schema`` when :func:`event_data` does not know the type: the
    data is made from it (:func:`data_for`)."""

    def as_json(self) -> dict[str, Any]:
        """As stored in the load spec."""
        return asdict(self)

    def data(self, rng: random.Random) -> dict[str, Any]:
        """An event's ``data`` (empty without data)."""
        if not self.with_data:
            return {}
        if self.data_schema is not None:
            return data_for(self.data_schema, rng)
        return event_data(self.type, rng)


#: ~50% explicit order ids (store-side events) and ~50% contact fan-out (customer-side).
MIX: tuple[Template, ...] = (
    Template("payment.received", ORDER, 10),
    Template("shipment.approved", ORDER, 3),
    Template("shipment.tracking_number_added", ORDER, 3),
    Template("shipment.shipped", ORDER, 3),
    Template("shipment.updated", ORDER, 2),
    Template("order.canceled", ORDER, 2),
    Template("document.created", ORDER, 3),
    Template("document.opened", ORDER, 3),
    Template("email.sent", ORDER, 3),
    Template("email.viewed", ORDER, 3),
    Template("email.link_clicked", ORDER, 2),
    Template("responsible.changed", ORDER, 2),
    Template("call.incoming", "phone", 8),
    Template("call.missed", "phone", 5),
    Template("email.received", "email", 5),
    Template("email.viewed", "email", 2),
    Template("email.link_clicked", "email", 2),
    Template("chat.message", "email", 4),
    Template("chat.message", "phone", 3),
    Template("chat.message", "contact_id", 1),
    Template("visit", "visitor", 7),
    Template("form.submitted", "email", 4),
    Template("form.callback", "phone", 2),
)


def build_mix(
    accepted: Sequence[str],
    *,
    fanout_only: bool = False,
    data_schemas: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[list[Template], list[str]]:
    """The templates of :data:`MIX` whose type the server accepts, and notes.

    Accepted types :data:`MIX` does not know are sent by order id and by email, with
    data made from their ``data_schemas`` (type -> schema) when given. When the server
    accepts no type of one half (e.g. only ``payment.received`` exists yet), that half
    is made of the other half's types, so the order/fan-out split holds.
    """
    accepted_set = set(accepted)
    notes: list[str] = []
    orders = [t for t in MIX if t.mode == ORDER and t.type in accepted_set]
    fanout = [t for t in MIX if t.mode != ORDER and t.type in accepted_set]
    known = {t.type for t in MIX}
    extra = sorted(accepted_set - known)
    if extra:
        schemas = data_schemas or {}
        notes.append(
            f"event types without a template, sent by order id and email: {extra}"
            + (" (data made from their data schemas)" if schemas else "")
        )
        for code in extra:
            schema = dict(schemas[code]) if code in schemas else None
            orders.append(Template(code, ORDER, 2, data_schema=schema))
            fanout.append(Template(code, "email", 2, data_schema=schema))
    if not fanout and orders:
        notes.append("no fan-out event type accepted: sending order-id types by contact")
        modes = ("phone", "email", "visitor")
        fanout = [
            replace(t, mode=mode, weight=t.weight / len(modes)) for t in orders for mode in modes
        ]
    if not orders and fanout and not fanout_only:
        notes.append("no order-id event type accepted: sending fan-out types by order id")
        orders = [replace(t, mode=ORDER) for t in fanout]
    if fanout_only:
        return fanout, notes
    # Scale each half to the same total weight: ~50% / ~50%.
    return _scaled(orders, 1.0) + _scaled(fanout, 1.0), notes


_TEXTS = (
    "Hello, where is my order?",
    "I would like a refund please",
    "Thanks!",
    "Can I change the delivery address?",
    "Is the blue one in stock?",
)


def event_data(event_type: str, rng: random.Random) -> dict[str, Any]:
    """Plausible ``data`` of an event type, using only the fields of contract §3."""
    pick = rng.choice
    if event_type == "payment.received":
        return {
            "amount": round(rng.uniform(5, 500), 2),
            "currency": "USD" if rng.random() < 0.8 else "EUR",
            "method": pick(("card", "paypal", "bank_transfer")),
        }
    if event_type.startswith("shipment."):
        data: dict[str, Any] = {"delivery_id": pick(VALUE_POOLS["delivery_id"])}
        if event_type in ("shipment.tracking_number_added", "shipment.shipped"):
            data["tracking_number"] = f"1Z{rng.randrange(10**9, 10**10)}"
        return data
    if event_type.startswith("document."):
        return {
            "template_id": pick(VALUE_POOLS["template_id"]),
            "document_id": f"doc-{rng.randrange(10**9)}",
        }
    if event_type == "email.link_clicked" or event_type == "visit":
        return {"url": pick(VALUE_POOLS["url"]) + pick(("", "?utm=mail", "42", "a/b"))}
    if event_type == "responsible.changed":
        return {"responsible_id": pick(VALUE_POOLS["responsible_id"])}
    if event_type.startswith("call."):
        return {"line": pick(VALUE_POOLS["line"])}
    if event_type.startswith("form."):
        return {"form_id": pick(VALUE_POOLS["form_id"])}
    if event_type == "chat.message":
        return {"channel_id": pick(VALUE_POOLS["channel_id"]), "text": pick(_TEXTS)}
    return {}


class EventFactory:
    """Deterministic event bodies for one load worker.

    The same ``(seed, worker)`` gives the same sequence of bodies, so the engine and
    the baseline receive the same events. Bodies carry unique ids, except for the
    deliberate duplicates (``duplicate_share``), which repeat an earlier body whole.
    """

    def __init__(
        self,
        templates: Sequence[Template],
        *,
        orders: int,
        contacts: int,
        seed: int,
        worker: int,
        tag: str,
        duplicate_share: float = 0.02,
        unknown_share: float = 0.05,
    ) -> None:
        self.templates = list(templates)
        self.weights = [t.weight for t in self.templates]
        self.orders = orders
        self.contacts = contacts
        self.rng = random.Random(seed * 1_000_003 + worker)
        self.prefix = f"{tag}-{worker}-"
        self.duplicate_share = duplicate_share
        self.unknown_share = unknown_share
        self.counter = 0
        self.history: deque[tuple[str, bytes]] = deque(maxlen=512)

    def contact(self) -> int:
        """A contact index: mostly a seeded contact, sometimes an unknown one."""
        if self.rng.random() < self.unknown_share:
            return self.contacts + self.rng.randrange(10_000_000)
        return self.rng.randrange(self.contacts)

    def next(self) -> tuple[str, bytes, bool]:
        """The next event: its type, its JSON body and whether it is a duplicate."""
        rng = self.rng
        if self.history and rng.random() < self.duplicate_share:
            event_type, body = rng.choice(self.history)
            return event_type, body, True
        template = rng.choices(self.templates, self.weights)[0]
        self.counter += 1
        event: dict[str, Any] = {"id": f"{self.prefix}{self.counter}", "type": template.type}
        contact = -1
        if template.mode == ORDER:
            event["order_id"] = order_id(rng.randrange(self.orders))
        else:
            contact = self.contact()
            if template.mode == "phone":
                event["contact"] = {"phone": phone_as_sent(contact, rng)}
            elif template.mode == "email":
                event["contact"] = {"email": email_as_sent(contact, rng)}
            elif template.mode == "visitor":
                event["contact"] = {"visitor_id": visitor_id(contact)}
            else:
                event["contact"] = {"contact_id": contact_id(contact)}
        event["occurred_at"] = SEEDED_AT
        if template.with_data:
            data = template.data(rng)
            if template.type == "chat.message":
                # a few dialogs per contact: some messages are the first of their dialog
                data["dialog_id"] = f"dlg-{contact}-{rng.randrange(3)}"
            if data:
                event["data"] = data
        body = orjson.dumps(event)
        self.history.append((template.type, body))
        return template.type, body, False


# --- the series' ring pipeline --------------------------------------------------------
# The series' triggers and orders points must do the same work per event. Their orders
# never end: the open statuses form a ring (N -> P -> S -> N with the default pipeline),
# one ring trigger per open status, each listening to its own event type (sent by order
# id only) with the condition ``status eq <its status>``, the last one allowed backwards.
# Every other trigger listens but can never win. An order-id event of a ring type then
# moves its order exactly when its type is the step of the order's status: with each
# ring type making RING_SHARE of the events, that is RING_SHARE of the events whatever
# the statuses, the number of triggers or of orders; other events move nothing.

RING_SHARE = 0.1
"""Share of all events sent of each ring step's event type: the moves per event stored."""

RING_PREFERRED = ("payment.received", "shipment.shipped", "document.created")
"""Trigger types the ring takes first when the server has them (its steps read as a
story: paid, shipped, a new document starts the next round)."""

NEVER_HOLDS: dict[str, Any] = {"field": "amount", "op": "gt", "value": 1_000_000}
"""A condition no seeded order meets (amounts are 5 to 500, see :func:`order_doc`)."""


@dataclass(frozen=True)
class RingStep:
    """One ring trigger: an event of ``event_type`` moves an order from ``source`` to
    ``target``."""

    trigger_type: str
    event_type: str
    source: str
    target: str
    backwards: bool = False


def plan_ring(
    trigger_types: Sequence[Mapping[str, Any]], templates: Sequence[Template], pipeline: Pipeline
) -> list[RingStep]:
    """One step per open status, each with a trigger type of its own.

    A ring trigger type listens to one event type, which the mix sends by order id only
    (so that a moving event moves one order), and needs no settings (so that it matches
    every such event); :data:`RING_PREFERRED` first, then by the mix's weight.

    :raises ValueError: fewer than two open statuses, or not enough such trigger types.
    """
    statuses = pipeline.open
    if len(statuses) < 2:
        raise ValueError(f"the ring needs two open statuses at least, not {statuses}")
    by_order = {t.type: t.weight for t in templates if t.mode == ORDER}
    fanned = {t.type for t in templates if t.mode != ORDER}
    candidates = [
        (t["type"], t["events"][0])
        for t in trigger_types
        if len(t["events"]) == 1
        and t["events"][0] in by_order
        and t["events"][0] not in fanned
        and not (t.get("settings_schema") or {}).get("required")
    ]

    def rank(candidate: tuple[str, str]) -> tuple[int, float, str]:
        code, event = candidate
        preferred = RING_PREFERRED.index(code) if code in RING_PREFERRED else len(RING_PREFERRED)
        return preferred, -by_order[event], code

    chosen: list[tuple[str, str]] = []
    for code, event in sorted(candidates, key=rank):
        if event not in {e for _c, e in chosen}:
            chosen.append((code, event))
    if len(chosen) < len(statuses):
        raise ValueError(f"the ring needs {len(statuses)} trigger types, found {chosen}")
    targets = statuses[1:] + statuses[:1]
    steps = zip(chosen[: len(statuses)], statuses, targets, strict=True)
    return [
        RingStep(code, event, source, target, backwards=target == statuses[0])
        for (code, event), source, target in steps
    ]


def ring_trigger(step: RingStep, index: int) -> dict[str, Any]:
    """The body of a ring trigger (the one back to the first status allowed backwards)."""
    return {
        "type": step.trigger_type,
        "status": step.target,
        "name": f"bench ring {step.source} -> {step.target} #{index}",
        "settings": {},
        "conditions": [{"field": "status", "op": "eq", "value": step.source}],
        "allow_backwards": step.backwards,
    }


def plan_ring_triggers(
    trigger_types: Sequence[Mapping[str, Any]],
    pipeline: Pipeline,
    ring: Sequence[RingStep],
    count: int,
    seed: int,
) -> list[dict[str, Any]]:
    """The ring's triggers, then ``count`` minus those of :func:`plan_triggers` (the
    main benchmark's: every type, the same settings, conditions and targets), each that
    could move an order given :data:`NEVER_HOLDS` as a last condition: they listen,
    are evaluated (``match``, conditions, target) and never win. Adding the same
    condition keeps their classes of alike triggers as many as :func:`plan_triggers`'s.

    :raises ValueError: ``count`` is smaller than the ring.
    """
    if count < len(ring):
        raise ValueError(f"{count} triggers cannot hold a ring of {len(ring)}")
    bodies = [ring_trigger(step, i + 1) for i, step in enumerate(ring)]
    listeners = plan_triggers(trigger_types, pipeline, count - len(ring), seed)
    return bodies + [_never_winning(body, pipeline) for body in listeners]


def _never_winning(body: dict[str, Any], pipeline: Pipeline) -> dict[str, Any]:
    """``body`` as is when its target is behind or at every order (the first open
    status, not allowed backwards), else with :data:`NEVER_HOLDS` appended."""
    if body["status"] == pipeline.lowest and not body.get("allow_backwards"):
        return body
    return {**body, "conditions": [*body.get("conditions", ()), dict(NEVER_HOLDS)]}


def ring_mix(
    templates: Sequence[Template], ring: Sequence[RingStep], share: float = RING_SHARE
) -> list[Template]:
    """The mix with each ring event type at ``share`` of all events; the other
    order-id types share what is left of the order-id half, the fan-out half unchanged.

    :raises ValueError: the ring's types would take more than the order-id half.
    """
    ring_events = [step.event_type for step in ring]
    fanout = [t for t in templates if t.mode != ORDER]
    others = [t for t in templates if t.mode == ORDER and t.type not in ring_events]
    fanout_share = 0.5 if fanout else 0.0
    left = 1.0 - fanout_share - share * len(ring)
    if left < 0:
        raise ValueError(f"{len(ring)} ring types at {share:.0%} each do not fit in the mix")
    by_type = {t.type: t for t in templates if t.mode == ORDER}
    mix = [replace(by_type[event], weight=share) for event in ring_events]
    mix += _scaled(others, left)
    mix += _scaled(fanout, fanout_share)
    return mix


def _scaled(templates: Sequence[Template], total: float) -> list[Template]:
    """``templates`` with their weights scaled to sum to ``total``."""
    weight = sum(t.weight for t in templates) or 1.0
    return [replace(t, weight=total * t.weight / weight) for t in templates]
