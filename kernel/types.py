"""The public types that plugins receive from and give to the kernel.

Everything here is part of the plugin contract documented in ``docs/hooks.md``: plugins
may import these names from :mod:`statusflow` and rely on them. Each public field has a
docstring right under it; ``docs/types.md`` is generated from them
(``python -m statusflow.testing.typedoc``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
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
"""Stands for a field that is absent from an order or an event: what a condition
operator's ``test`` receives as ``actual`` when it ``tests_missing``. It is falsy."""

API_SCOPES = ("events", "read", "admin")
"""The scopes an API key may hold (``[[auth.keys]] scopes``), and a :class:`Route` may
need: ``events`` (post events, keep orders), ``read`` (every ``GET`` under ``/api/``),
``admin`` (change triggers, statuses, endpoints, ...; it includes ``read``)."""

CONTACT_KEYS = ("phone", "email", "contact_id", "visitor_id")
"""The identifiers an event's ``contact`` may carry, and that
:attr:`EventType.contact_from` may name in the event's data."""


@dataclass(frozen=True, slots=True)
class Match:
    """The answer of a trigger type's ``match`` function."""

    matched: bool
    """Whether the event matches the trigger's settings."""
    reason: str = ""
    """When it does not, why, in words a store owner understands (it shows in the
    event's trace), e.g. ``"line is '2', trigger wants '1'"``."""


MATCHED = Match(True)
"""The ``Match`` of an event that matches: ``Match(True)``."""


@dataclass(frozen=True, slots=True)
class Event:
    """An event as the engine sees it, after validation and normalisation.

    Handed to ``inspect_event`` and to the trigger types' ``match`` functions, and
    carried by :class:`Outcome` to the status sinks. Only :attr:`facts` may be changed.
    """

    id: str
    """The event id: the client's ``id``, or a UUID the kernel made up."""
    type: str
    """The event type, e.g. ``"payment.received"``."""
    order_id: str | None
    """The order the event names, or ``None`` when it is fanned out by contact."""
    contact: Mapping[str, JSON]
    """Its contact identifiers (keys among :data:`CONTACT_KEYS`), as sent: phones and
    emails are not normalised here (fan-out compares them normalised). When the event
    sent neither ``order_id`` nor ``contact``, the ones its data named through
    :attr:`EventType.contact_from`. Empty when there are none."""
    occurred_at: str | None
    """When the event happened, as sent but in the stored form (``utc_now()``'s), or
    ``None`` when it was not sent."""
    data: Mapping[str, JSON]
    """The event's ``data``, valid against its type's ``data_schema`` and after its
    ``normalize``."""
    facts: dict[str, JSON] = field(default_factory=dict)
    """What ``inspect_event`` hooks learnt about the event from stored state (e.g.
    ``{"chat.first_message": True}``), read by ``match`` functions. The one field that
    plugins may change."""


@dataclass(frozen=True, slots=True)
class TriggerView:
    """A stored trigger, as plugins see it: handed to a trigger type's ``describe`` and
    answered by ``KernelServices.find_trigger_by_secret``."""

    id: int
    """Its numeric id; lower ids were created first (and win ties)."""
    type: str
    """Its trigger type code, e.g. ``"call.missed"``."""
    status: str
    """The id of its target status."""
    name: str
    """Its name as given by the user (``""`` when none was)."""
    allow_backwards: bool
    """Whether it may move an order to a status of a lower ``sort``."""
    enabled: bool
    """Whether it is enabled; a disabled trigger moves nothing."""
    settings: Mapping[str, JSON]
    """Its settings, valid against its type's ``settings_schema``."""
    conditions: tuple[Mapping[str, JSON], ...]
    """Its conditions as stored: ``{"field", "op", "value"}`` objects."""
    secret: str
    """A random per-trigger secret, never shown by the kernel; plugins may use it to
    build URLs that only this trigger answers (see the ``webhook`` plugin)."""


MatchFunction = Callable[[Mapping[str, JSON], Event], Match]
"""``match(settings, event) -> Match``: whether an event matches a trigger's settings.
Pure, synchronous and cheap: it runs on the event path, once per distinct settings."""

DescribeFunction = Callable[[TriggerView, "KernelServices"], Mapping[str, JSON]]
"""``describe(trigger, kernel) -> fields``: extra fields shown with the trigger in the
API (e.g. a ``webhook_url``)."""

NormalizeFunction = Callable[[dict[str, JSON]], dict[str, JSON]]
"""``normalize(data) -> data``: an event's valid data in its canonical form; may raise
:class:`ValueError`, whose message becomes the 422's."""


def match_always(settings: Mapping[str, JSON], event: Event) -> Match:
    """The ``match`` of a trigger type without settings: every event matches."""
    return MATCHED


@dataclass(frozen=True, slots=True)
class EventType:
    """An event type that a plugin accepts, given to ``register_event_types``."""

    type: str
    """The code, e.g. ``"call.missed"``; unique across plugins (a duplicate stops
    start-up naming both plugins)."""
    title: str
    """A short human title, e.g. ``"Missed call"``."""
    data_schema: Mapping[str, JSON] = field(default_factory=lambda: {"type": "object"})
    """JSON Schema (draft 2020-12) of the event's ``data``, an object; an event whose
    data breaks it is refused with a 422 before anything is stored."""
    normalize: NormalizeFunction | None = None
    """Optional; turns valid data into its canonical form, or raises
    :class:`ValueError`, whose message becomes the 422's message."""
    public: bool = True
    """Whether ``POST /api/events`` accepts it; ``False`` for events that only the
    plugin's own routes submit (e.g. ``webhook.called``)."""
    contact_from: Mapping[str, str] = field(default_factory=dict)
    """Which data fields name the event's contact: ``{contact key: data field}``, the
    keys among :data:`CONTACT_KEYS`, e.g. ``{"phone": "caller"}``. Used only for an
    event that sends neither ``order_id`` nor ``contact`` identifiers: then each named
    field present in its data (and not ``null``) supplies that identifier, the event is
    fanned out by them as if they had been sent in ``contact`` (they are stored and shown
    as its ``contact``), and they are checked as ``contact``'s are (a 422 naming the data
    field). An event that sends its own ``contact`` or an ``order_id`` is unchanged;
    without either and without the named fields, it is refused with the usual 422."""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.contact_from) - set(CONTACT_KEYS))
        if unknown:
            raise ValueError(
                f"event type {self.type!r}: contact_from names unknown contact keys "
                f"{unknown}; known: {', '.join(CONTACT_KEYS)}"
            )
        fields = list(self.contact_from.values())
        if not all(isinstance(f, str) and f for f in fields):
            raise ValueError(
                f"event type {self.type!r}: contact_from's data fields must be non-empty "
                f"strings, not {fields}"
            )


@dataclass(frozen=True, slots=True)
class TriggerType:
    """A trigger type that a plugin offers, given to ``register_trigger_types``."""

    type: str
    """The code, e.g. ``"call.missed"``; unique across plugins (a duplicate stops
    start-up naming both plugins)."""
    title: str
    """A short human title, e.g. ``"Missed call"``."""
    events: tuple[str, ...]
    """The event types it listens to. Those no loaded plugin registers are left out at
    start-up (with a warning); a type left with none is inactive, its triggers kept."""
    settings_schema: Mapping[str, JSON] = field(
        default_factory=lambda: {"type": "object", "additionalProperties": False}
    )
    """JSON Schema (draft 2020-12) of its triggers' ``settings``, an object; a trigger
    whose settings break it is refused with a 422. The default allows no settings."""
    match: MatchFunction = match_always
    """Decides whether an event matches a trigger's settings (see
    :data:`MatchFunction`); by default every event matches."""
    describe: DescribeFunction | None = None
    """Optional; extra public fields of a trigger of this type (see
    :data:`DescribeFunction`)."""


ConditionFunction = Callable[[JSON, JSON], bool]
"""``test(actual, expected) -> bool``: whether a condition holds."""


@dataclass(frozen=True, slots=True)
class ConditionOperator:
    """A condition operator usable in any trigger's ``conditions``, given to
    ``register_condition_operators``."""

    name: str
    """The ``op`` code, e.g. ``"gte"``; unique across plugins."""
    test: ConditionFunction
    """``test(actual, expected) -> bool``: ``actual`` is the field's value, ``expected``
    the condition's ``value`` (or what :attr:`compile` made of it). It may raise
    ``TypeError`` or ``ValueError``: the condition then fails with that reason."""
    value_schema: Mapping[str, JSON] = field(default_factory=dict)
    """JSON Schema of the condition's ``value``, checked when a trigger is created or
    changed; the default accepts any value."""
    compile: Callable[[JSON], JSON] | None = None
    """Optional; turns the ``value`` into what :attr:`test` receives as ``expected``,
    once per trigger (e.g. a compiled regular expression). May raise ``ValueError``
    (a 422 when the trigger is saved)."""
    tests_missing: bool = False
    """Whether :attr:`test` is also called when the field is absent (with
    :data:`MISSING` as ``actual``); otherwise a condition on a missing field fails."""


@dataclass(frozen=True, slots=True)
class Move:
    """A committed (or, inside ``prepare_moves``, about to be committed) move of one
    order, part of an :class:`Outcome`. The JSON API shows it as ``{"order_id", "from",
    "to", "trigger_id"}`` (:meth:`as_json`)."""

    order_id: str
    """The order that moved."""
    from_status: str
    """The id of its status before the move (``from`` in the JSON API)."""
    to_status: str
    """The id of its status after the move (``to`` in the JSON API)."""
    trigger_id: int | None
    """The trigger that caused it, ``None`` for a manual move."""
    event_id: str | None
    """The event that caused it, ``None`` for a manual move."""
    event_type: str | None
    """That event's type, ``None`` for a manual move."""
    at: str
    """When it was made, in the stored form (``utc_now()``'s)."""
    trigger_type: str | None = None
    """The type of the trigger that caused it (e.g. ``"payment.received"``), ``None``
    for a manual move."""
    action_id: int | None = None
    """The action whose run made it (``ActionContext.move_to``), ``None`` otherwise; with
    ``trigger_id`` also ``None``, a move is manual only when this is ``None`` too."""

    def as_json(self) -> dict[str, JSON]:
        """The move as the API shows it: ``{"order_id", "from", "to", "trigger_id"}``."""
        return {
            "order_id": self.order_id,
            "from": self.from_status,
            "to": self.to_status,
            "trigger_id": self.trigger_id,
        }


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one event (or one manual move) did: handed to the status sinks,
    ``prepare_moves`` and ``moves_committed``."""

    event: Event | None
    """The event, ``None`` for a manual move through the API."""
    order_ids: tuple[str, ...]
    """The orders it resolved to (for a manual move, the order moved)."""
    moves: tuple[Move, ...]
    """The moves it caused: zero or more, at most one per order."""
    at: str
    """When it was processed, in the stored form (``utc_now()``'s)."""


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
        """Add an entry of ``kind`` to an order's timeline, committed with the event;
        ``data``'s fields show in the entry next to ``at`` (a time in the stored form,
        usually the outcome's ``at``) and ``kind``."""
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

    def config_table(self, name: str) -> Mapping[str, JSON]:
        """A top-level table of the configuration kept for plugins, checked by the
        kernel, ``$env`` secrets resolved: ``"smtp"`` (empty if absent)."""
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
        self,
        event: Mapping[str, JSON],
        *,
        only_trigger_id: int | None = None,
        store_unknown_order: bool = False,
    ) -> dict[str, JSON]:
        """Process one event exactly as ``POST /api/events`` would; return its result.

        :param event: the event body (``type``, ``order_id`` or ``contact``, ``data``...).
            Event types that are not ``public`` are accepted here.
        :param only_trigger_id: when given, no other trigger is a candidate.
        :param store_unknown_order: when true, an event whose ``order_id`` names no order
            is stored resolved to no order (no moves, no timeline entry) instead of a
            404: a provider's webhook answered 200 so that it is not retried forever.
        :raises ApiError: when the event is invalid (422) or names an unknown order
            (404, unless ``store_unknown_order``); nothing is stored then.
        """
        ...

    async def order_exists(self, order_id: str) -> bool:
        """Whether an order with this id exists."""
        ...

    def status_name(self, status_id: str) -> str | None:
        """The name of the status ``status_id`` (``"Paid"`` for ``"P"``) as this process
        last read the pipeline, ``None`` for an id it has not seen; for messages and logs
        (a sink of ``moves_committed`` has the names of the statuses moved between)."""
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
        writer); it runs SQLAlchemy Core statements as :meth:`read`'s does.

        A change to a definition (a webhook endpoint, an action, ...) goes in the audit
        log in the same transaction: ``await conn.record_audit(action="update",
        kind="webhook_endpoint", resource_id=..., before={...}, after={...},
        key_name=api_key_name(request))`` (values of keys named like secrets are stored
        as ``"[redacted]"``; see ``docs/api.md``)."""
        ...

    @property
    def dialect(self) -> str:
        """The database's SQLAlchemy dialect name: ``"sqlite"`` or ``"postgresql"``."""
        ...


# --- actions: what happens when an order enters a status --------------------------------


@dataclass(frozen=True, slots=True)
class ActionView:
    """A stored action, as its type's ``run`` sees it (``ActionContext.action``)."""

    id: int
    """Its numeric id."""
    type: str
    """Its action type code, e.g. ``"status.change"``."""
    status: str
    """The status whose entering schedules it."""
    name: str
    """Its name as given by the user (``""`` when none was)."""
    settings: Mapping[str, JSON]
    """Its settings, valid against its type's ``settings_schema``."""


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What an action type's ``run`` answers when it did not fail: done, or skipped
    with a reason (``None`` stands for :data:`DONE`). To fail, raise
    :class:`ActionFailed` (or any exception: it is retried)."""

    skipped: bool = False
    """Whether the run did nothing on purpose (the run's state is then ``skipped``)."""
    reason: str = ""
    """Why, or what was done, in words a store owner understands; shown as the run's
    ``reason`` and in the order's timeline."""


DONE = ActionResult()
"""The :class:`ActionResult` of a run that did its work: ``ActionResult()``."""


class ActionFailed(Exception):
    """Raised by an action type's ``run``: this attempt failed. The run is tried again
    with backoff (up to ``[actions] max_attempts``), unless ``retry`` is false, when it
    is ``failed`` at once (a template that cannot render, an address refused)."""

    retry: bool
    """Whether another attempt may succeed (a timeout, an HTTP 503): ``True`` by default."""

    def __init__(self, message: str, *, retry: bool = True) -> None:
        super().__init__(message)
        self.retry = retry


class ActionContext(Protocol):
    """What a run of an action hands its type's ``run``. Changes to the order are not
    made at once: they commit together with the run's end, in one transaction, so that
    a retried run never makes them twice."""

    run_id: int
    """The run's id: an idempotency key for whatever the run sends outside (a
    webhook's message id, an email's ``Message-ID``)."""
    attempt: int
    """1 for the first attempt, then 2, 3 ... up to ``[actions] max_attempts``."""
    action: ActionView
    """The action this run is of."""
    order: Mapping[str, JSON]
    """The order as ``GET /api/orders/{id}`` shows it, read when the run started."""
    due_at: str
    """When the run was due, in the stored form."""
    now: str
    """When this attempt started, in the stored form (the scheduler's clock: use it,
    rather than ``utc_now()``, for times the run computes, such as a deadline)."""
    kernel: KernelServices
    """The kernel's services (``plugin_config``, ``public_url``, ``read`` ...)."""

    def move_to(self, status: str) -> None:
        """Move the order to ``status`` when the run ends: a move like any other
        (recorded, in the timeline, told to the sinks, scheduling the new status's
        actions) that fires no triggers."""
        ...

    def update_order(self, patch: Mapping[str, JSON]) -> None:
        """Merge-patch (RFC 7396) the order's ``responsible_id``, ``amount``,
        ``currency`` or ``fields`` when the run ends (no event is emitted).

        :raises ValueError: the patch names another field.
        """
        ...

    def insert(self, table: Any, row: Mapping[str, JSON]) -> None:
        """Insert ``row`` into a table of the plugin's own (see ``migration_locations``)
        when the run ends, in the same transaction."""
        ...


ActionFunction = Callable[[ActionContext], Awaitable["ActionResult | None"]]
"""``async def run(ctx) -> ActionResult | None``: what a run of an action does."""

CheckFunction = Callable[[Mapping[str, JSON], frozenset[str]], None]
"""``check(settings, statuses)``: refuse settings that the schema cannot (a status
that does not exist, a template that does not compile) by raising :class:`ValueError`,
whose message becomes the 422's; ``statuses`` are the pipeline's status ids."""


@dataclass(frozen=True, slots=True)
class ActionType:
    """An action type that a plugin offers, given to ``register_action_types``."""

    type: str
    """The code, e.g. ``"email.send"``; unique across plugins."""
    title: str
    """A short human title, e.g. ``"Send an email"``."""
    run: ActionFunction
    """What a run does (see :data:`ActionFunction` and :class:`ActionContext`)."""
    settings_schema: Mapping[str, JSON] = field(
        default_factory=lambda: {"type": "object", "additionalProperties": False}
    )
    """JSON Schema (draft 2020-12) of its actions' ``settings``, an object; an action
    whose settings break it is refused with a 422. The default allows no settings."""
    check: CheckFunction | None = None
    """Optional; more checks of the settings when an action is saved (see
    :data:`CheckFunction`)."""


RouteHandler = Callable[[Any], Awaitable[Any]]
"""``async def handler(request: aiohttp.web.Request) -> aiohttp.web.Response``; raising
:class:`~statusflow.ApiError` answers the contract's JSON error."""


@dataclass(frozen=True, slots=True)
class Route:
    """An HTTP route contributed by a plugin, given to ``register_routes``."""

    method: str
    """The HTTP method: ``"GET"``, ``"POST"``, ..."""
    path: str
    """An aiohttp path, e.g. ``"/t/o/{token}"``. Paths under ``/api/`` require an API
    token (or key holding :attr:`scope`) like every API route; others are public."""
    handler: RouteHandler
    """``async def handler(request: aiohttp.web.Request) -> aiohttp.web.Response``
    (see :data:`RouteHandler`)."""
    openapi: Mapping[str, JSON] | None = None
    """Optional OpenAPI 3 operation object, merged into ``/api/openapi.json``."""
    scope: str | None = None
    """The API key scope a route under ``/api/`` needs (one of :data:`API_SCOPES`):
    ``"events"``, ``"read"`` or ``"admin"``. ``None``, the default, is ``"read"`` for a
    ``GET`` and ``"admin"`` for any other method. Plain ``[auth] tokens`` may call every
    route; routes outside ``/api/`` never need a token, whatever this says."""
    query: Sequence[str | Mapping[str, JSON]] | None = None
    """The query parameters it accepts: names, or OpenAPI parameter objects (``{"name",
    "schema", "description"}``). Under ``/api/`` any other is a 422; ``None`` takes
    those of ``openapi``'s ``parameters`` (``"in": "query"``), so none if it has none."""


@dataclass(frozen=True, slots=True)
class UiPage:
    """A page (or a form's target) a plugin adds to the board, given to
    ``register_ui_pages``; it is served under ``/ui/`` behind the board's sign-in and
    cross-site protection."""

    path: str
    """An aiohttp path under ``/ui/``, e.g. ``"/deliveries"`` (``/ui/deliveries``)."""
    handler: RouteHandler
    """``async def handler(request) -> Response``; ``statusflow.ui.render.render(request,
    template, context)`` renders a template that extends ``base.html``."""
    label: str | None = None
    """The main navigation's label of the page; ``None`` keeps it out of the navigation."""
    templates: str | None = None
    """The folder of its Jinja2 templates (autoescaped; the board's own take precedence)."""
    method: str = "GET"
    """The HTTP method: ``"GET"`` for a page, ``"POST"`` for a form's target."""
    scope: str | None = None
    """The scope a key needs (``None``: ``"read"`` for a ``GET``, else ``"admin"``)."""
