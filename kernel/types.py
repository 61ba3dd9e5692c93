"""The public types that plugins receive from and give to the kernel.

Everything here is part of the plugin contract documented in ``docs/hooks.md``: plugins
may import these names from :mod:`kernel` and rely on them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

JSON = Any
"""A value that came out of (or goes into) a JSON document."""


class _Missing:
    """The value of a field that is absent (see :data:`MISSING`)."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()
"""Stands for a field that is absent from an order or an event."""


@dataclass(frozen=True, slots=True)
class Match:
    """The answer of a trigger type's ``match`` function.

    :param matched: whether the event matches the trigger's settings.
    :param reason: when it does not, why, in words a store owner understands
        (it shows in the event's trace), e.g. ``"line is '2', trigger wants '1'"``.
    """

    matched: bool
    reason: str = ""


MATCHED = Match(True)


@dataclass(frozen=True, slots=True)
class Event:
    """An event as the engine sees it, after validation and normalisation.

    :param id: the event id (the client's, or one the kernel made up).
    :param type: the event type, e.g. ``"payment.received"``.
    :param order_id: the order the event names, or ``None`` for contact fan-out.
    :param contact: the contact identifiers as sent (phones in E.164 form).
    :param occurred_at: ISO-8601 time the event happened, as sent, or ``None``.
    :param data: the event's data, after the event type's ``normalize``.
    :param facts: what ``inspect_event`` hooks learnt about the event from stored
        state (e.g. ``{"chat.first_message": True}``), read by ``match`` functions.
    """

    id: str
    type: str
    order_id: str | None
    contact: Mapping[str, str]
    occurred_at: str | None
    data: Mapping[str, JSON]
    facts: dict[str, JSON] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TriggerView:
    """A stored trigger, as plugins see it.

    :param id: its numeric id; lower ids were created first.
    :param type: its trigger type code.
    :param status: the id of its target status.
    :param settings: its settings, valid against the type's settings schema.
    :param secret: a random per-trigger secret, never shown by the kernel; plugins
        may use it to build URLs that only this trigger answers (see ``webhook``).
    """

    id: int
    type: str
    status: str
    name: str
    allow_backwards: bool
    enabled: bool
    settings: Mapping[str, JSON]
    conditions: tuple[Mapping[str, JSON], ...]
    secret: str


MatchFunction = Callable[[Mapping[str, JSON], Event], Match]
"""``match(settings, event) -> Match``: pure, synchronous, cheap (hot path)."""

DescribeFunction = Callable[[TriggerView, "KernelServices"], Mapping[str, JSON]]
"""``describe(trigger, kernel) -> extra fields`` shown with the trigger in the API."""

NormalizeFunction = Callable[[dict[str, JSON]], dict[str, JSON]]
"""``normalize(data) -> data``: may raise :class:`ValueError` with a message (422)."""


def match_always(settings: Mapping[str, JSON], event: Event) -> Match:
    """The ``match`` of a trigger type without settings: every event matches."""
    return MATCHED


@dataclass(frozen=True, slots=True)
class EventType:
    """An event type that a plugin accepts.

    :param type: the code, e.g. ``"call.missed"``; unique across plugins.
    :param title: a short human title.
    :param data_schema: JSON Schema of the event's ``data`` (an object); an event
        whose data breaks it is rejected with a 422 before anything is stored.
    :param normalize: optional; turns valid data into its canonical form, or raises
        :class:`ValueError` whose message becomes the 422's message.
    :param public: whether ``POST /api/events`` accepts it; ``False`` for events that
        only a plugin's own route submits (e.g. ``webhook.called``).
    """

    type: str
    title: str
    data_schema: Mapping[str, JSON] = field(default_factory=lambda: {"type": "object"})
    normalize: NormalizeFunction | None = None
    public: bool = True


@dataclass(frozen=True, slots=True)
class TriggerType:
    """A trigger type that a plugin offers.

    :param type: the code, e.g. ``"call.missed"``; unique across plugins (a duplicate
        stops start-up naming both plugins).
    :param title: a short human title.
    :param events: the event types it listens to.
    :param settings_schema: JSON Schema of its ``settings`` (an object). Triggers
        whose settings break it are refused with a 422.
    :param match: decides whether an event matches a trigger's settings.
    :param describe: optional; extra public fields of a trigger of this type.
    """

    type: str
    title: str
    events: tuple[str, ...]
    settings_schema: Mapping[str, JSON] = field(
        default_factory=lambda: {"type": "object", "additionalProperties": False}
    )
    match: MatchFunction = match_always
    describe: DescribeFunction | None = None


ConditionFunction = Callable[[JSON, JSON], bool]


@dataclass(frozen=True, slots=True)
class ConditionOperator:
    """A condition operator usable in any trigger's ``conditions``.

    :param name: the ``op`` code, e.g. ``"gte"``.
    :param test: ``test(actual, expected) -> bool``; ``actual`` is the field's
        value, ``expected`` the condition's ``value``. It may raise ``TypeError`` or
        ``ValueError``: the condition then fails with that reason.
    :param value_schema: JSON Schema of the condition's ``value``; checked when a
        trigger is created or changed.
    :param compile: optional; turns the ``value`` into what ``test`` receives as
        ``expected``, once per trigger (e.g. a compiled regular expression). May
        raise ``ValueError`` (422 at trigger creation).
    :param tests_missing: whether ``test`` is also called when the field is absent
        (with :data:`MISSING`); otherwise a condition on a missing field fails.
    """

    name: str
    test: ConditionFunction
    value_schema: Mapping[str, JSON] = field(default_factory=dict)
    compile: Callable[[JSON], JSON] | None = None
    tests_missing: bool = False


@dataclass(frozen=True, slots=True)
class Move:
    """A committed (or, inside ``prepare_moves``, about to be committed) move.

    :param order_id: the order that moved.
    :param from_status: its status before.
    :param to_status: its status after.
    :param trigger_id: the trigger that caused it, ``None`` for a manual move.
    :param event_id: the event that caused it, ``None`` for a manual move.
    :param event_type: that event's type, ``None`` for a manual move.
    :param at: ISO-8601 time in UTC.
    :param trigger_type: the type of the trigger that caused it (e.g.
        ``"payment.received"``), ``None`` for a manual move.
    """

    order_id: str
    from_status: str
    to_status: str
    trigger_id: int | None
    event_id: str | None
    event_type: str | None
    at: str
    trigger_type: str | None = None

    def as_json(self) -> dict[str, JSON]:
        """The move as the API shows it."""
        return {
            "order_id": self.order_id,
            "from": self.from_status,
            "to": self.to_status,
            "trigger_id": self.trigger_id,
        }


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one event did: handed to status sinks.

    :param event: the event (``None`` for a manual move through the API).
    :param order_ids: the orders it resolved to.
    :param moves: the moves it caused (zero or more, at most one per order).
    :param at: ISO-8601 time in UTC when it was processed.
    """

    event: Event | None
    order_ids: tuple[str, ...]
    moves: tuple[Move, ...]
    at: str


class StateStore(Protocol):
    """Durable state that plugins keep across events, instances and restarts.

    Handed to ``inspect_event``. Writes join the event's transaction: they commit
    with the event or not at all, and in a dry run they are not made.
    """

    async def claim(self, namespace: str, key: str) -> bool:
        """Mark ``key`` as seen in ``namespace``; return whether this call was the first.

        Race-free across concurrent events and server processes: of many events
        claiming the same key at once, exactly one gets ``True``. In a dry run
        nothing is written and the answer is what a real run would have got.
        """
        ...

    async def seen(self, namespace: str, key: str) -> bool:
        """Whether ``key`` was claimed in ``namespace`` by an earlier, stored event."""
        ...


class Transaction(Protocol):
    """The event's open database transaction, handed to ``prepare_moves``."""

    def add_timeline(self, order_id: str, kind: str, data: Mapping[str, JSON], at: str) -> None:
        """Add an entry to an order's timeline, committed with the event."""
        ...

    def insert(self, table: Any, row: Mapping[str, JSON]) -> None:
        """Insert ``row`` into ``table`` (a SQLAlchemy ``Table`` of the plugin's own, made
        by the plugin's migrations, see ``migration_locations``), committed with the event.
        Rows of one table are written in one statement, in the order they were added."""
        ...


class KernelServices(Protocol):
    """What the kernel offers to plugin routes and callbacks."""

    public_url: str
    """The configured base URL of this service, without a trailing slash."""

    def plugin_config(self, name: str) -> Mapping[str, JSON]:
        """The ``[plugins.NAME]`` table of the configuration (empty if absent)."""
        ...

    def register_gauge(self, name: str, documentation: str, callback: Callable[[], Any]) -> None:
        """Report ``callback()`` as the Prometheus gauge ``name`` at ``GET /metrics``.

        The callback returns a number, or an awaitable of one (it may read the
        database through :meth:`read`); it runs at scrape time, in whichever instance
        is scraped, bounded to 5 seconds. Call it from ``startup``, e.g. to report an
        outbox's backlog. A failing callback is logged and its gauge left out.

        :raises ValueError: a malformed or already registered name.
        """
        ...

    def sign(self, payload: Mapping[str, JSON]) -> str:
        """An opaque URL-safe token carrying ``payload``, signed with HMAC-SHA256."""
        ...

    def unsign(self, token: str) -> dict[str, JSON] | None:
        """The payload of a token made by :meth:`sign`, or ``None`` if it was tampered."""
        ...

    async def submit_event(
        self, event: Mapping[str, JSON], *, only_trigger_id: int | None = None
    ) -> dict[str, JSON]:
        """Process one event exactly as ``POST /api/events`` would; return its result.

        :param event: the event body (``type``, ``order_id`` or ``contact``, ``data``...).
            Event types that are not ``public`` are accepted here.
        :param only_trigger_id: when given, no other trigger is a candidate.
        :raises ApiError: when the event is invalid (422) or names an unknown order
            (404); nothing is stored then.
        """
        ...

    async def order_exists(self, order_id: str) -> bool:
        """Whether an order with this id exists."""
        ...

    async def find_trigger_by_secret(self, secret: str) -> TriggerView | None:
        """The trigger whose secret this is, or ``None``."""
        ...

    def read(self) -> AbstractAsyncContextManager[Any]:
        """``async with kernel.read() as conn``: the store's connection in one snapshot,
        to run SQLAlchemy Core statements on (``await conn.execute(statement)``, answering
        a SQLAlchemy-like result; see ``docs/hooks.md``)."""
        ...

    def write(self) -> AbstractAsyncContextManager[Any]:
        """``async with kernel.write() as conn``: the store's connection in a write
        transaction, committed when the block ends (on SQLite it waits for the single
        writer); it runs SQLAlchemy Core statements as :meth:`read`'s does."""
        ...

    @property
    def dialect(self) -> str:
        """The database's SQLAlchemy dialect name: ``"sqlite"`` or ``"postgresql"``."""
        ...


RouteHandler = Callable[[Any], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Route:
    """An HTTP route contributed by a plugin.

    :param method: ``"GET"``, ``"POST"``, ...
    :param path: an aiohttp path, e.g. ``"/t/o/{token}"``. Paths under ``/api/``
        require the API token like every API route; others are public.
    :param handler: ``async def handler(request: aiohttp.web.Request) -> web.Response``.
    :param openapi: optional OpenAPI 3 operation object, merged into
        ``/api/openapi.json``.
    """

    method: str
    path: str
    handler: RouteHandler
    openapi: Mapping[str, JSON] | None = None
