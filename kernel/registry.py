"""The plugin manager factory and the registry of what the plugins declared.

Order of work (as in tox and pytest): block every disabled plugin, load the entry points
of the group ``statusflow`` (built-ins travel the same road as third-party plugins; an
entry point naming a class gets an instance of its own per plugin manager), then
``check_pending`` so that an implementation of an unknown hook stops start-up, and the
hook runner's plans (:mod:`statusflow.hooks`), so that one it cannot call stops it too.
Every hook is called through that runner.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import jsonschema
import pluggy
import structlog

from statusflow import hooks, hookspecs
from statusflow.engine import metrics
from statusflow.errors import StartupError
from statusflow.serving import setting_errors
from statusflow.serving.plugin_dirs import DirPlugin, find_dir_plugins
from statusflow.types import (
    ActionType,
    ConditionOperator,
    EventType,
    KernelServices,
    Route,
    TriggerType,
)

ENTRY_POINT_GROUP = "statusflow"
KERNEL_PLUGINS = ("statusflow.conditions", "statusflow.sinks")

log = structlog.get_logger("statusflow.plugins")


@dataclass
class Registry:
    """What the loaded plugins declared, keyed by code, each with its plugin's name."""

    event_types: dict[str, EventType] = field(default_factory=dict)
    trigger_types: dict[str, TriggerType] = field(default_factory=dict)
    operators: dict[str, ConditionOperator] = field(default_factory=dict)
    action_types: dict[str, ActionType] = field(default_factory=dict)
    owners: dict[tuple[str, str], str] = field(default_factory=dict)
    triggers_by_event: dict[str, tuple[str, ...]] = field(default_factory=dict)
    inactive_trigger_types: dict[str, str] = field(default_factory=dict)
    """Trigger types of loaded plugins that listen to no loaded event type: each with
    the reason its stored triggers are inactive. They are not in ``trigger_types``."""

    def owner(self, kind: str, code: str) -> str:
        """The name of the plugin that registered ``code`` of ``kind``."""
        return self.owners[(kind, code)]


Source = EntryPoint | DirPlugin
"""Where a plugin comes from: an installed distribution's entry point, or a file or
package of a plugins folder (``dirs``), which is loaded the same way."""


def _sources(dirs: Iterable[str] = ()) -> list[Source]:
    """Every installed plugin, then every plugin of the ``dirs``, sorted by name.

    :raises StartupError: a folder's plugin has the name of an installed one.
    """
    found: list[Source] = list(entry_points(group=ENTRY_POINT_GROUP))
    installed = {ep.name: ep for ep in found}
    for plugin in find_dir_plugins(dirs):
        taken = installed.get(plugin.name)
        if taken is not None:
            raise StartupError(
                f"plugin {plugin.name!r} of {plugin.path} has the name of "
                f"{_described(taken)}: rename the file"
            )
        found.append(plugin)
    return sorted(found, key=lambda ep: ep.name)


def _dist_of(ep: Source) -> tuple[str | None, str | None]:
    dist = ep.dist
    if dist is None:
        return None, None
    return dist.metadata["Name"], dist.version


def _load(ep: Source) -> object:
    """The plugin an entry point names: a module or an object, or a new instance of a
    class (made with no arguments: one per plugin manager, so one per app)."""
    plugin = ep.load()
    return plugin() if inspect.isclass(plugin) else plugin


def _described(ep: Source) -> str:
    """``the installed plugin statusflow-parcels 0.1.0``, or ``the plugin at PATH``."""
    if isinstance(ep, DirPlugin):
        return f"the plugin at {ep.path}"
    dist, version = _dist_of(ep)
    return f"the installed plugin {dist} {version}" if dist else f"the installed {ep.value}"


def make_plugin_manager(
    disable: Iterable[str] = (),
    enable: Iterable[str] | None = None,
    extra_plugins: Iterable[tuple[str, object]] = (),
    dirs: Iterable[str] = (),
) -> pluggy.PluginManager:
    """A fresh plugin manager: kernel built-ins, then enabled entry points, checked.

    :param disable: plugin names not to load.
    :param enable: when given, only these entry-point plugins are loaded.
    :param extra_plugins: ``(name, plugin)`` pairs registered directly (tests); a name
        must be free (an installed plugin's is not, even while that one is not enabled).
    :param dirs: plugins folders: their modules and packages load like entry points.
    :raises StartupError: a name in ``disable`` or ``enable`` is no plugin's; a plugin
        fails to import, implements an unknown hook, has a bad hook signature, a
        wrapper, or an ``async def`` where the hook may not be async, or a name is taken
        twice; the message names the plugin.
    """
    from statusflow.engine import conditions, sinks

    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    pm.register(conditions, name="statusflow.conditions")
    pm.register(sinks, name="statusflow.sinks")
    disable = tuple(disable)
    enable = tuple(enable) if enable is not None else None
    allowed = set(enable) if enable is not None else None
    for name in disable:
        pm.set_blocked(name)
    found = _sources(dirs)
    extra_plugins = list(extra_plugins)
    _check_named(disable, enable, {ep.name for ep in found} | {n for n, _ in extra_plugins})
    for ep in found:
        if allowed is not None and ep.name not in allowed:
            pm.set_blocked(ep.name)
        if pm.is_blocked(ep.name):
            continue
        if pm.get_plugin(ep.name) is not None:
            dist, _ = _dist_of(ep)
            raise StartupError(f"plugin {ep.name!r} ({dist}) is installed twice")
        try:
            pm.register(_load(ep), name=ep.name)
        except Exception as exc:
            raise StartupError(f"plugin {ep.name!r} cannot be loaded: {exc}") from exc
    _check_extra_names(extra_plugins, found)
    for name, plugin in extra_plugins:
        if not pm.is_blocked(name):
            try:
                pm.register(plugin, name=name)
            except pluggy.PluginValidationError as exc:
                raise StartupError(f"plugin {name!r} cannot be loaded: {exc}") from exc
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        name = pm.get_name(exc.plugin) or repr(exc.plugin)
        raise StartupError(f"plugin {name!r}: {exc}") from exc
    if os.environ.get("STATUSFLOW_TRACE_PLUGINS"):
        hooks.trace_calls(pm)
    hooks.runner(pm).check()
    return pm


def _check_named(disable: Iterable[str], enable: Iterable[str] | None, known: set[str]) -> None:
    """Every name in ``[plugins] enable`` and ``disable`` is a plugin found here: a typo
    would leave a plugin on (or off) without a word.

    :raises StartupError: naming the unknown names, with the installed names close to them.
    """
    for key, names in (("enable", enable or ()), ("disable", disable)):
        unknown = sorted(set(names) - known)
        if unknown:
            listed = setting_errors.unknown_names("plugin", unknown, known)
            raise StartupError(
                f"[plugins] {key}: {listed}; installed: {', '.join(sorted(known)) or 'none'} "
                "(see `statusflow plugins`)"
            )


def _check_extra_names(extra: list[tuple[str, object]], found: list[Source]) -> None:
    """An object given by name is never silently left out for an installed plugin."""
    installed = {ep.name: ep for ep in found}
    seen: set[str] = set()
    for name, _ in extra:
        if name in seen:
            raise StartupError(f"plugin name {name!r} is given to two plugin objects")
        seen.add(name)
        if name in KERNEL_PLUGINS:
            raise StartupError(f"plugin name {name!r} is the kernel's own: pick another name")
        taken = installed.get(name)
        if taken is not None:
            away = (
                f"leave {taken.path.parent} out of the plugins folders"
                if isinstance(taken, DirPlugin)
                else f"uninstall {_dist_of(taken)[0] or 'it'} from this environment"
            )
            raise StartupError(
                f"plugin name {name!r} is taken by {_described(taken)}, so this object "
                f"cannot have it: register the object under another name (e.g. "
                f"{name + '_test'!r}), or {away}"
            )


def _append_pair(items: list[tuple[str, Any]], plugin: str, item: Any) -> None:
    items.append((plugin, item))


def _collect(pm: pluggy.PluginManager, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
    """Call every implementation of a register-style hook; pair items with plugins."""
    items: list[tuple[str, Any]] = []
    for impl in hooks.runner(pm).plan(hook_name):
        register = functools.partial(_append_pair, items, impl.plugin_name)
        try:
            impl.call({"register": register, **kwargs})
        except hooks.NotPlain as exc:
            raise StartupError(f"{exc} (it registers what it has and returns)") from exc
        except Exception as exc:
            raise StartupError(f"plugin {impl.plugin_name!r} failed in {hook_name}: {exc}") from exc
    return items


def build_registry(pm: pluggy.PluginManager) -> Registry:
    """Gather event, trigger and action types and operators; refuse duplicates loudly."""
    reg = Registry()
    for kind, hook_name, target in (
        ("event_type", "register_event_types", reg.event_types),
        ("trigger_type", "register_trigger_types", reg.trigger_types),
        ("operator", "register_condition_operators", reg.operators),
        ("action_type", "register_action_types", reg.action_types),
    ):
        for plugin, item in _collect(pm, hook_name):
            code = item.type if kind != "operator" else item.name
            if code in target:
                other = reg.owners[(kind, code)]
                raise StartupError(
                    f"{kind.replace('_', ' ')} {code!r} is registered by both plugin "
                    f"{other!r} and plugin {plugin!r}"
                )
            target[code] = item
            reg.owners[(kind, code)] = plugin
    schemas = [
        ("event_type", code, "data schema", t.data_schema) for code, t in reg.event_types.items()
    ]
    schemas += [
        ("trigger_type", code, "settings schema", t.settings_schema)
        for code, t in reg.trigger_types.items()
    ]
    schemas += [
        ("operator", code, "value schema", op.value_schema) for code, op in reg.operators.items()
    ]
    schemas += [
        ("action_type", code, "settings schema", t.settings_schema)
        for code, t in reg.action_types.items()
    ]
    for kind, code, what, schema in schemas:
        try:
            jsonschema.Draft202012Validator.check_schema(dict(schema))
        except jsonschema.SchemaError as exc:
            plugin = reg.owners[(kind, code)]
            raise StartupError(
                f"plugin {plugin!r}: {what} of {code!r} is invalid: {exc.message}"
            ) from exc
    for code in list(reg.trigger_types):
        _drop_missing_events(reg, code)
    by_event: dict[str, list[str]] = {}
    for code, trigger_type in reg.trigger_types.items():
        for event in trigger_type.events:
            by_event.setdefault(event, []).append(code)
    reg.triggers_by_event = {k: tuple(v) for k, v in by_event.items()}
    return reg


def _drop_missing_events(reg: Registry, code: str) -> None:
    """A trigger type listens only to the event types that are loaded (their plugin may
    be disabled or uninstalled); listening to none, it is not loaded, and its stored
    triggers are inactive (a warning, as for any plugin that is away, never a stop)."""
    trigger_type = reg.trigger_types[code]
    missing = [event for event in trigger_type.events if event not in reg.event_types]
    if not missing:
        return
    plugin = reg.owners[("trigger_type", code)]
    loaded = tuple(event for event in trigger_type.events if event in reg.event_types)
    if loaded:
        reg.trigger_types[code] = dataclasses.replace(trigger_type, events=loaded)
        log.warning(
            "plugins.trigger_type_narrowed",
            plugin=plugin,
            trigger_type=code,
            missing_event_types=missing,
            listens_to=list(loaded),
        )
        return
    del reg.trigger_types[code]
    reg.inactive_trigger_types[code] = (
        f"trigger type {code!r} listens to {_event_types(missing)}, "
        "which no loaded plugin registers"
    )
    log.warning(
        "plugins.trigger_type_inactive",
        plugin=plugin,
        trigger_type=code,
        missing_event_types=missing,
    )


def _event_types(codes: list[str]) -> str:
    quoted = ", ".join(repr(code) for code in codes)
    return f"event type {quoted}" if len(codes) == 1 else f"event types {quoted}"


def collect_routes(pm: pluggy.PluginManager, kernel: KernelServices) -> list[tuple[str, Route]]:
    """Every route the plugins contribute, with the contributing plugin's name."""
    return _collect(pm, "register_routes", kernel=kernel)


async def call_lifecycle(pm: pluggy.PluginManager, hook_name: str, kernel: KernelServices) -> None:
    """Call ``startup`` or ``shutdown`` on every plugin, awaiting async implementations.

    A failing ``startup`` stops start-up naming the plugin; a failing ``shutdown`` is
    logged and counted, and the others still run.
    """

    def failed(plugin: str, exc: Exception) -> None:
        if hook_name == "startup":
            raise StartupError(f"plugin {plugin!r} failed in startup: {exc}") from exc
        log.error("plugin.shutdown_failed", plugin=plugin, exc_info=exc)
        metrics.plugin_error(plugin, hook_name)

    await hooks.runner(pm).acall(hook_name, {"kernel": kernel}, failed)
