"""Every hook call the kernel makes, made the pluggy way, one implementation at a time.

``pm.hook.NAME(**kwargs)`` stops at the first exception and never awaits, so the kernel
calls each implementation itself, keeping pluggy's semantics:

* **order**: pluggy's (it runs ``reversed(caller.get_hookimpls())``): ``tryfirst``
  implementations first, ``trylast`` ones last, otherwise the plugin registered last
  runs first;
* **arguments**: each implementation gets only the arguments it declares
  (``impl.argnames``, and the defaulted ``impl.kwargnames`` the hook has), so
  ``def startup(): ...`` implements ``startup(kernel)``;
* **awaitables**: awaited for the hooks of :data:`statusflow.hookspecs.ASYNC_HOOKS`;
  an ``async def`` implementation of any other hook stops start-up, and an awaitable
  returned at run time is that implementation's failure (:class:`NotPlain`);
* **failures**: each is its own plugin's; the runner tells the caller which plugin
  failed, and the caller's policy applies (start-up stops, or the failure is logged and
  the other implementations still run);
* **wrappers** (``wrapper=True``, ``hookwrapper=True``) stop start-up: a wrapper runs
  around the other implementations and sees their exceptions, so their failures would
  no longer be their own.

The call plan of each hook (functions and their arguments, in order) is made once per
plugin manager: register every plugin first (:func:`statusflow.registry.make_plugin_manager`
does). With :func:`trace_calls` (``STATUSFLOW_TRACE_PLUGINS``) each implementation is
called through a pluggy hook caller of its own plugin, so that pluggy's hook-call
monitoring sees every call; otherwise functions are called directly.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any

import pluggy
import structlog

from statusflow.errors import StartupError
from statusflow.hookspecs import ASYNC_HOOKS

log = structlog.get_logger("statusflow.plugins")

Invoke = Callable[[Mapping[str, Any]], Any]
Failed = Callable[[str, Exception], None]
"""A caller's policy for a failed implementation: ``failed(plugin_name, exception)``;
raise to stop the call (start-up), return to go on with the next implementation."""


class NotPlain(TypeError):
    """An implementation of a hook that may not be async returned an awaitable."""


class Implementation:
    """One plugin's implementation of one hook, ready to call with the hook's arguments.

    ``call(kwargs)`` calls it with the arguments it declares, taken by name from
    ``kwargs`` (all of the hook's arguments), and answers what it answered; for a hook
    that may not be async, an awaitable answer raises :class:`NotPlain`. ``await
    acall(kwargs)`` also awaits an awaitable answer (*may be async* hooks).
    """

    __slots__ = ("call", "hook", "plugin_name")

    def __init__(self, hook: str, plugin_name: str, call: Invoke) -> None:
        self.hook = hook
        self.plugin_name = plugin_name  # as pluggy's HookImpl names it
        self.call = call

    async def acall(self, kwargs: Mapping[str, Any]) -> Any:
        """Call it, awaiting the answer when it is awaitable."""
        answer = self.call(kwargs)
        if answer is not None and inspect.isawaitable(answer):
            return await answer
        return answer

    def __repr__(self) -> str:
        return f"<Implementation {self.hook} of {self.plugin_name!r}>"


class HookRunner:
    """Calls the hooks of one plugin manager (see the module's docstring)."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self._pm = weakref.ref(pm)  # the runner, kept per manager, must not keep it alive
        self._traced = False
        self._plans: dict[str, tuple[Implementation, ...]] = {}

    def plan(self, hook: str) -> tuple[Implementation, ...]:
        """The implementations of ``hook`` in the order they run (made on first use).

        :raises StartupError: an implementation is a wrapper, or ``async def`` where the
            hook may not be async; the message names the plugin and the hook.
        """
        found = self._plans.get(hook)
        if found is None:
            found = self._plans[hook] = self._make_plan(hook)
        return found

    def check(self) -> None:
        """Make the plan of every hook now, so that what cannot run stops start-up."""
        for hook in _hook_names(self._manager()):
            self.plan(hook)

    def call(self, hook: str, kwargs: Mapping[str, Any], failed: Failed) -> list[tuple[str, Any]]:
        """Call every implementation of a plain hook; ``(plugin, answer)`` of each answer
        that is not ``None``, in order. A failure goes to ``failed``, then on."""
        answers: list[tuple[str, Any]] = []
        for impl in self.plan(hook):
            try:
                answer = impl.call(kwargs)
            except Exception as exc:
                failed(impl.plugin_name, exc)
                continue
            if answer is not None:
                answers.append((impl.plugin_name, answer))
        return answers

    async def acall(self, hook: str, kwargs: Mapping[str, Any], failed: Failed) -> None:
        """Call every implementation of a *may be async* hook, awaiting awaitable answers
        (these hooks answer nothing). A failure goes to ``failed``, then on."""
        for impl in self.plan(hook):
            try:
                await impl.acall(kwargs)
            except Exception as exc:
                failed(impl.plugin_name, exc)

    def trace(self) -> None:
        """From now on, call each implementation through pluggy (see :func:`trace_calls`)."""
        self._traced = True
        self._plans.clear()

    def _manager(self) -> pluggy.PluginManager:
        pm = self._pm()
        assert pm is not None, "a runner outlived its plugin manager"
        return pm

    def _make_plan(self, hook: str) -> tuple[Implementation, ...]:
        caller: pluggy.HookCaller = getattr(self._manager().hook, hook)
        spec = caller.spec
        spec_names = frozenset(spec.argnames) if spec is not None else frozenset()
        impls = caller.get_hookimpls()
        plan = []
        for impl in reversed(impls):  # pluggy's order
            _refuse(hook, impl)
            if self._traced:
                others = [other.plugin for other in impls if other.plugin is not impl.plugin]
                call = _through_pluggy(self._pm, hook, others)
            else:
                call = _direct(impl, spec_names)
            if hook not in ASYNC_HOOKS:
                call = _plain(call, hook, impl.plugin_name)
            plan.append(Implementation(hook, impl.plugin_name, call))
        return tuple(plan)


def _hook_names(pm: pluggy.PluginManager) -> list[str]:
    return [name for name, caller in vars(pm.hook).items() if isinstance(caller, pluggy.HookCaller)]


def _refuse(hook: str, impl: pluggy.HookImpl) -> None:
    """Stop start-up for an implementation the runner cannot call the pluggy way."""
    if impl.wrapper or impl.hookwrapper:
        raise StartupError(
            f"plugin {impl.plugin_name!r}: its {hook} is a wrapper (wrapper=True or "
            "hookwrapper=True), which statusflow does not run: a wrapper sees the other "
            "plugins' failures, and each plugin's failure must stay its own"
        )
    if hook not in ASYNC_HOOKS and _is_async(impl.function):
        raise StartupError(
            f"plugin {impl.plugin_name!r}: {hook} must be a plain function, not async "
            f"(only {', '.join(sorted(ASYNC_HOOKS))} may be async)"
        )


def _is_async(function: Callable[..., Any]) -> bool:
    function = inspect.unwrap(function)
    return inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function)


def _direct(impl: pluggy.HookImpl, spec_names: frozenset[str]) -> Invoke:
    """Call ``impl.function`` with the arguments it declares, as pluggy's ``_multicall``
    does, in one frame (this runs for every implementation of the event-time hooks)."""
    function = impl.function
    names = impl.argnames
    defaulted = tuple(name for name in impl.kwargnames if name in spec_names)
    if defaulted:
        return lambda kw: function(*[kw[n] for n in names], **{n: kw[n] for n in defaulted})
    if not names:
        return lambda kw: function()
    if len(names) == 1:
        name = names[0]
        return lambda kw: function(kw[name])
    getter = itemgetter(*names)
    return lambda kw: function(*getter(kw))


def _plain(invoke: Invoke, hook: str, plugin: str) -> Invoke:
    """``invoke``, refusing an awaitable answer."""

    def call(kw: Mapping[str, Any]) -> Any:
        answer = invoke(kw)
        return answer if answer is None else _checked(answer, hook, plugin)

    return call


def _checked(answer: Any, hook: str, plugin: str) -> Any:
    """A plain hook's answer, unless it is awaitable.

    :raises NotPlain: it is.
    """
    if inspect.isawaitable(answer):
        if inspect.iscoroutine(answer):
            answer.close()  # never run: no "was never awaited" warning
        raise NotPlain(f"plugin {plugin!r}: {hook} must be a plain function, not async")
    return answer


def _through_pluggy(
    pm: weakref.ReferenceType[pluggy.PluginManager], hook: str, others: list[object]
) -> Invoke:
    """Call one plugin's implementation through a pluggy hook caller of its own (one
    without the ``others``), so that pluggy's hook-call monitoring sees the call."""

    def invoke(kw: Mapping[str, Any]) -> Any:
        manager = pm()
        assert manager is not None, "a hook was called after its plugin manager was gone"
        answers = manager.subset_hook_caller(hook, others)(**kw)
        return answers[0] if answers else None

    return invoke


_runners: weakref.WeakKeyDictionary[pluggy.PluginManager, HookRunner] = weakref.WeakKeyDictionary()


def runner(pm: pluggy.PluginManager) -> HookRunner:
    """The hook runner of ``pm``: one per plugin manager, its plans made once."""
    found = _runners.get(pm)
    if found is None:
        found = _runners[pm] = HookRunner(pm)
    return found


def trace_calls(pm: pluggy.PluginManager) -> Callable[[], None]:
    """Log every call of every implementation at debug level (``hook.call``), through
    pluggy's hook-call monitoring; the answer undoes it (the runner keeps calling
    through pluggy)."""

    def before(hook: str, impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, Any]) -> None:
        for impl in impls:
            log.debug("hook.call", hook=hook, plugin=impl.plugin_name)

    def after(
        outcome: pluggy.Result[Any],
        hook: str,
        impls: Sequence[pluggy.HookImpl],
        kwargs: Mapping[str, Any],
    ) -> None:
        if outcome.exception is not None:
            plugins = [impl.plugin_name for impl in impls]
            error = type(outcome.exception).__name__
            log.debug("hook.failed", hook=hook, plugins=plugins, error=error)

    undo = pm.add_hookcall_monitoring(before, after)
    runner(pm).trace()
    return undo


__all__ = [
    "Failed",
    "HookRunner",
    "Implementation",
    "NotPlain",
    "runner",
    "trace_calls",
]
