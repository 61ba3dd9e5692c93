"""The whole contract between the statusflow kernel and its plugins.

A plugin is a module (or object) with functions decorated by ``@hookimpl`` whose names
are the hooks below, found through an entry point in the group ``statusflow``::

    [options.entry_points]
    statusflow =
        calls = statusflow.plugins.calls

Four kinds of hooks:

* **event sources** declare event and trigger types, inspect incoming events against
  stored state, and contribute HTTP routes (and pages of the board);
* **condition matchers** decide whether an event matches a trigger: a trigger type's
  ``match`` function checks its settings, and condition operators check its
  ``conditions`` (the contract's ``eq`` ... ``exists`` are built in the same way);
* **status sinks** are told about moves: inside the event's transaction
  (``prepare_moves``) and after it committed (``moves_committed``);
* **action types** say what may happen when an order enters a status
  (``register_action_types``): the kernel schedules, runs and retries them.

Hooks are called the pluggy way (:mod:`statusflow.hooks`): an implementation takes any
subset of its hook's arguments, by name (``def startup(): ...`` implements
``startup(kernel)``), and implementations run in pluggy's order: ``tryfirst`` ones
first, ``trylast`` ones last, otherwise the plugin registered last runs first. A
plugin's failure in one hook is its own: the other implementations still run. Wrappers
(``wrapper=True``, ``hookwrapper=True``) stop start-up, since a wrapper would see the
other plugins' failures.

pluggy does not await coroutines. Hooks marked *may be async* (:data:`ASYNC_HOOKS`)
accept an ``async def`` implementation, which the kernel awaits; every other hook must
be a plain function. No hook here uses ``firstresult``: every implementation is called.

A plugin that keeps state (settings read once, a background task) is an object: the
entry point may name a class, which the kernel instantiates with no arguments once per
app and registers; its methods are the hooks, and its state is set up in the hooks that
get ``kernel`` (``register_routes``, ``startup``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from pluggy import HookspecMarker

from statusflow.types import (
    JSON,
    ActionType,
    ConditionOperator,
    Event,
    EventType,
    KernelServices,
    Outcome,
    Route,
    StateStore,
    Transaction,
    TriggerType,
    UiPage,
)

hookspec = HookspecMarker("statusflow")

ASYNC_HOOKS = frozenset({"inspect_event", "startup", "shutdown", "moves_committed"})
"""The hooks marked *may be async*: an ``async def`` implementation is awaited."""


# --- event sources -------------------------------------------------------------------


@hookspec
def register_event_types(register: Callable[[EventType], None]) -> None:
    """Declare the event types this plugin accepts, once at start-up.

    :param register: call it once per :class:`~kernel.EventType`. A type registered by
        two plugins stops start-up with an error naming both.
    :return: nothing.
    """


@hookspec
def register_trigger_types(register: Callable[[TriggerType], None]) -> None:
    """Declare the trigger types this plugin offers, once at start-up.

    Each :class:`~kernel.TriggerType` names the event types it listens to, the JSON
    Schema of its settings and its ``match`` function (the condition matcher for its
    settings). A trigger type registered by two plugins stops start-up.

    :param register: call it once per trigger type.
    :return: nothing.
    """


@hookspec
def inspect_event(event: Event, state: StateStore, kernel: KernelServices) -> None:
    """Learn facts about an incoming event from durable state; *may be async*.

    Called once per event, before its triggers are matched, inside the event's
    transaction (also in a dry run, where ``state`` writes nothing). Record what you
    learn in ``event.facts`` for your ``match`` functions, e.g. whether a chat message
    is the first of its dialog. Return quickly for event types that are not yours.

    :param event: the validated event; only ``event.facts`` may be changed.
    :param state: the durable key store, see :class:`~kernel.StateStore`.
    :param kernel: the services the kernel offers to plugins; read your own settings
        with ``kernel.plugin_config(NAME)``. Leave it out when you need none.
    :return: nothing.
    """


@hookspec
def plugin_settings_schema() -> Mapping[str, JSON] | None:
    """The JSON Schema of this plugin's settings, the ``[plugins.NAME]`` table.

    Checked once at start-up, after secrets are resolved: a value written as
    ``{"$env": "VAR"}`` is replaced by the environment variable ``VAR`` (unset: start-up
    stops). A table that breaks the schema stops start-up with a message naming the
    plugin and the key. Plugins read the checked table with
    ``kernel.plugin_config(NAME)``; without a table they get ``{}``, so give defaults in
    code, not only in the schema.

    :return: a JSON Schema of an object, or ``None`` when the plugin has no settings.
    """


@hookspec
def register_routes(register: Callable[[Route], None], kernel: KernelServices) -> None:
    """Contribute HTTP routes (tracking pixels, provider webhooks, ...), once at start-up.

    Routes under ``/api/`` need the API token like the kernel's own; others are public.
    Handlers may call ``kernel.submit_event(...)`` to process an event.

    :param register: call it once per :class:`~kernel.Route`.
    :param kernel: the services the kernel offers to plugins.
    :return: nothing.
    """


@hookspec
def register_ui_pages(register: Callable[[UiPage], None], kernel: KernelServices) -> None:
    """Add pages to the board (``/ui/``), once at start-up, when the board is on.

    :param register: call it once per :class:`~kernel.UiPage` (a page with a ``label``
        shows in the main navigation).
    :param kernel: the services the kernel offers to plugins.
    :return: nothing.
    """


@hookspec
def events_from_order_change(
    before: Mapping[str, JSON], after: Mapping[str, JSON]
) -> list[dict[str, JSON]] | None:
    """Turn a change of an order through ``PATCH /api/orders/{id}`` into events.

    :param before: the order as the API showed it before the patch.
    :param after: the order after the patch (and after any manual status change).
    :return: event bodies to process (as if posted to ``/api/events``; the kernel
        fills in ``order_id``), or ``None``.
    """


# --- lifecycle -------------------------------------------------------------------------


@hookspec
def migration_locations() -> str | None:
    """The folder of this plugin's own Alembic migrations, for tables of its own.

    The kernel upgrades every plugin's migrations with its own at start-up (and in
    ``statusflow migrate``). The plugin's first revision has ``down_revision = None``,
    ``branch_labels = ("NAME",)`` and ``depends_on`` the kernel revision whose tables it
    refers to (e.g. ``"0001"``); revision ids must be unique across plugins (prefix them
    with the plugin's name). An installed plugin's migrations run even while it is
    disabled (its module is imported for this hook alone), so that its tables stay in
    step and disabling it never stops start-up.

    :return: an absolute path, or ``None``.
    """


@hookspec
def startup(kernel: KernelServices) -> None:
    """The database is ready and the server is about to serve; *may be async*.

    Start background work here (e.g. an outbox worker with ``asyncio.create_task``) and
    keep the task on the plugin object (an entry point naming a class gets one object
    per app), never in a module global.

    :param kernel: the services the kernel offers to plugins.
    :return: nothing.
    """


@hookspec
def shutdown(kernel: KernelServices) -> None:
    """The server is stopping; stop background work; *may be async*.

    :param kernel: the services the kernel offers to plugins.
    :return: nothing.
    """


# --- condition matchers ---------------------------------------------------------------


@hookspec
def register_condition_operators(register: Callable[[ConditionOperator], None]) -> None:
    """Add condition operators usable in the ``conditions`` of any trigger.

    The contract's operators (``eq``, ``ne``, ``gt``, ``gte``, ``lt``, ``lte``, ``in``,
    ``not_in``, ``contains``, ``exists``) are registered by the kernel through this
    same hook and cannot be disabled. An operator registered twice stops start-up.

    :param register: call it once per :class:`~kernel.ConditionOperator`.
    :return: nothing.
    """


# --- status sinks -----------------------------------------------------------------------


@hookspec
def prepare_moves(outcome: Outcome, tx: Transaction, kernel: KernelServices) -> None:
    """Record what must commit together with an event or a manual move.

    Called inside the transaction, after the engine chose the moves and before the
    commit, for every processed event (moves or not) and every manual move; never in a
    dry run. Write with ``tx`` only (``tx.add_timeline``, ``tx.insert``). An exception
    here drops the rows this implementation added for the event, is logged, and is noted
    in the stored event's ``errors``; the event and its moves still commit.

    :param outcome: the event, the orders it resolved to and its moves.
    :param tx: the open transaction.
    :param kernel: the services the kernel offers to plugins; read your own settings
        with ``kernel.plugin_config(NAME)`` (do not use its ``write()`` here: write with
        ``tx``). Leave it out when you need none.
    :return: nothing.
    """


@hookspec
def moves_committed(outcome: Outcome, kernel: KernelServices) -> None:
    """Be told about an event's or a manual move's outcome after it committed; *may be async*.

    Exceptions are logged and never undo the commit.

    :param outcome: the event, the orders it resolved to and its moves.
    :param kernel: the services the kernel offers to plugins.
    :return: nothing.
    """


# --- action types -------------------------------------------------------------------------


@hookspec
def register_action_types(register: Callable[[ActionType], None]) -> None:
    """Declare the action types this plugin offers, once at start-up.

    Each :class:`~kernel.ActionType` has a JSON Schema of its settings and an async
    ``run(ctx)``, called by the kernel's scheduler when a run of an action of the type
    is due (its conditions held, the order still in the status). ``run`` answers
    ``None`` or an :class:`~kernel.ActionResult` (done, or skipped with a reason), or
    raises :class:`~kernel.ActionFailed` (retried with backoff unless ``retry`` is
    false). An action type registered by two plugins stops start-up.

    :param register: call it once per action type.
    :return: nothing.
    """


__all__ = [
    "ASYNC_HOOKS",
    "events_from_order_change",
    "hookspec",
    "inspect_event",
    "migration_locations",
    "moves_committed",
    "plugin_settings_schema",
    "prepare_moves",
    "register_action_types",
    "register_condition_operators",
    "register_event_types",
    "register_routes",
    "register_trigger_types",
    "register_ui_pages",
    "shutdown",
    "startup",
]
