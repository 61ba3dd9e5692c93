"""The plugin manager factory and the registry of what the plugins declared.

Order of work (as in tox and pytest): block every disabled plugin, load the entry points
of the group ``statusflow`` (built-ins travel the same road as third-party plugins; an
entry point naming a class gets an instance of its own per plugin manager), then
``check_pending`` so that an implementation of an unknown hook stops start-up, and the
hook runner's plans (:mod:`statusflow.hooks`), so that one it cannot call stops it too.
Every hook is called through that runner.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any, cast

import jsonschema
import pluggy
import structlog

from statusflow import hooks, hookspecs
from statusflow.engine import metrics
from statusflow.errors import StartupError
from statusflow.types import ConditionOperator, EventType, KernelServices, Route, TriggerType

ENTRY_POINT_GROUP = "statusflow"
KERNEL_PLUGINS = ("statusflow.conditions", "statusflow.sinks")

log = structlog.get_logger("statusflow.plugins")


@dataclass(frozen=True)
class PluginInfo:
    """One plugin found through an entry point."""

    name: str
    distribution: str | None
    version: str | None
    trigger_types: tuple[str, ...]
    enabled: bool

    def as_json(self) -> dict[str, Any]:
        """As ``GET /api/plugins`` and ``statusflow plugins --json`` show it."""
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "trigger_types": list(self.trigger_types),
            "enabled": self.enabled,
        }


@dataclass
class Registry:
    """What the loaded plugins declared, keyed by code, each with its plugin's name."""

    event_types: dict[str, EventType] = field(default_factory=dict)
    trigger_types: dict[str, TriggerType] = field(default_factory=dict)
    operators: dict[str, ConditionOperator] = field(default_factory=dict)
    owners: dict[tuple[str, str], str] = field(default_factory=dict)
    triggers_by_event: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def owner(self, kind: str, code: str) -> str:
        """The name of the plugin that registered ``code`` of ``kind``."""
        return self.owners[(kind, code)]


def _entry_points() -> list[EntryPoint]:
    return sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def _dist_of(ep: EntryPoint) -> tuple[str | None, str | None]:
    dist = ep.dist
    if dist is None:
        return None, None
    return dist.metadata["Name"], dist.version


def _load(ep: EntryPoint) -> object:
    """The plugin an entry point names: a module or an object, or a new instance of a
    class (made with no arguments: one per plugin manager, so one per app)."""
    plugin = ep.load()
    return plugin() if inspect.isclass(plugin) else plugin


def make_plugin_manager(
    disable: Iterable[str] = (),
    enable: Iterable[str] | None = None,
    extra_plugins: Iterable[tuple[str, object]] = (),
) -> pluggy.PluginManager:
    """A fresh plugin manager: kernel built-ins, then enabled entry points, checked.

    :param disable: plugin names not to load.
    :param enable: when given, only these entry-point plugins are loaded.
    :param extra_plugins: ``(name, plugin)`` pairs registered directly (tests).
    :raises StartupError: a plugin fails to import, implements an unknown hook, has a
        bad hook signature, a wrapper, or an ``async def`` where the hook may not be
        async; the message names the plugin.
    """
    from statusflow.engine import conditions, sinks

    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    pm.register(conditions, name="statusflow.conditions")
    pm.register(sinks, name="statusflow.sinks")
    allowed = set(enable) if enable is not None else None
    for name in disable:
        pm.set_blocked(name)
    found = list(_entry_points())
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
    named = set(disable) | (allowed or set())
    unknown = named - {ep.name for ep in found} - {name for name, _ in extra_plugins}
    if unknown:  # a typo, or a plugin not installed here: nothing to load or to leave out
        log.warning("plugins.not_installed", names=sorted(unknown), hint="see `statusflow plugins`")
    if os.environ.get("STATUSFLOW_TRACE_PLUGINS"):
        hooks.trace_calls(pm)
    hooks.runner(pm).check()
    return pm


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
    """Gather event types, trigger types and operators; refuse duplicates loudly."""
    reg = Registry()
    for kind, hook_name, target in (
        ("event_type", "register_event_types", reg.event_types),
        ("trigger_type", "register_trigger_types", reg.trigger_types),
        ("operator", "register_condition_operators", reg.operators),
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
    for kind, code, what, schema in schemas:
        try:
            jsonschema.Draft202012Validator.check_schema(dict(schema))
        except jsonschema.SchemaError as exc:
            plugin = reg.owners[(kind, code)]
            raise StartupError(
                f"plugin {plugin!r}: {what} of {code!r} is invalid: {exc.message}"
            ) from exc
    for code, trigger_type in reg.trigger_types.items():
        plugin = reg.owners[("trigger_type", code)]
        for event in trigger_type.events:
            if event not in reg.event_types:
                raise StartupError(
                    f"plugin {plugin!r}: trigger type {code!r} listens to {event!r}, "
                    "which no loaded plugin registers as an event type"
                )
    by_event: dict[str, list[str]] = {}
    for code, trigger_type in reg.trigger_types.items():
        for event in trigger_type.events:
            by_event.setdefault(event, []).append(code)
    reg.triggers_by_event = {k: tuple(v) for k, v in by_event.items()}
    return reg


def collect_routes(pm: pluggy.PluginManager, kernel: KernelServices) -> list[tuple[str, Route]]:
    """Every route the plugins contribute, with the contributing plugin's name."""
    return _collect(pm, "register_routes", kernel=kernel)


def list_plugins(
    disable: Iterable[str] = (), enable: Iterable[str] | None = None
) -> list[PluginInfo]:
    """Every plugin found through entry points, enabled or not, with its trigger types.

    Disabled plugins are imported into a throwaway manager only to read their trigger
    types; none of their hooks is called otherwise.
    """
    disabled = set(disable)
    allowed = set(enable) if enable is not None else None
    infos = []
    for ep in _entry_points():
        enabled = ep.name not in disabled and (allowed is None or ep.name in allowed)
        dist, version = _dist_of(ep)
        infos.append(PluginInfo(ep.name, dist, version, _trigger_types_of(ep), enabled))
    return infos


def _trigger_types_of(ep: EntryPoint) -> tuple[str, ...]:
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    try:
        pm.register(_load(ep), name=ep.name)
        return tuple(item.type for _, item in _collect(pm, "register_trigger_types"))
    except Exception as exc:
        log.warning("plugin.introspection_failed", plugin=ep.name, error=str(exc))
        return ()


def _resolve_env(value: Any, where: str) -> Any:
    """Replace every ``{"$env": "VAR"}`` in ``value`` by the environment variable."""
    if isinstance(value, dict):
        if set(value) == {"$env"}:
            name = value["$env"]
            if not isinstance(name, str) or name not in os.environ:
                raise StartupError(f"{where}: environment variable {name!r} is not set")
            return os.environ[name]
        return {k: _resolve_env(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_env(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def plugin_settings(
    pm: pluggy.PluginManager, tables: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Each loaded plugin's ``[plugins.NAME]`` table, secrets resolved, schema-checked.

    :raises StartupError: naming the plugin and the key that is wrong.
    """
    resolved: dict[str, dict[str, Any]] = {}
    for name, table in tables.items():
        if pm.get_plugin(name) is None:
            log.warning("plugin.settings_unused", plugin=name, reason="plugin not loaded")
            continue
        resolved[name] = _resolve_env(dict(table), f"[plugins.{name}]")
    for impl in hooks.runner(pm).plan("plugin_settings_schema"):
        try:
            schema = cast("Mapping[str, Any] | None", impl.call({}))
        except Exception as exc:
            raise StartupError(f"plugin {impl.plugin_name!r}: settings schema: {exc}") from exc
        if schema is None:
            continue
        table = resolved.get(impl.plugin_name, {})
        validator = jsonschema.Draft202012Validator(dict(schema))
        errors = sorted(validator.iter_errors(table), key=lambda e: list(e.absolute_path))
        if errors:
            error = errors[0]
            key = ".".join(str(p) for p in error.absolute_path)
            where = f"[plugins.{impl.plugin_name}]" + (f" {key}" if key else "")
            raise StartupError(f"plugin {impl.plugin_name!r}: {where}: {error.message}")
    with_schema = {impl.plugin_name for impl in hooks.runner(pm).plan("plugin_settings_schema")}
    for name in sorted(set(resolved) - with_schema):  # the plugin reads no settings at all
        log.warning("plugin.settings_unused", plugin=name, reason="plugin takes no settings")
    return resolved


def migration_locations(pm: pluggy.PluginManager) -> list[str]:
    """The folders of the Alembic migrations of every installed plugin, disabled ones too.

    Alembic keeps only each branch's head in ``alembic_version``, and refuses to start
    when it cannot locate one: a disabled plugin's migrations stay on the path, so that
    disabling a plugin with tables never stops start-up (its tables are kept, unused).
    """
    locations = _migration_locations(pm)
    for ep in _entry_points():
        if not pm.is_blocked(ep.name) or pm.get_plugin(ep.name) is not None:
            continue
        spare = pluggy.PluginManager(ENTRY_POINT_GROUP)
        spare.add_hookspecs(hookspecs)
        try:
            spare.register(_load(ep), name=ep.name)
            found = _migration_locations(spare)
        except Exception as exc:
            log.warning("plugin.introspection_failed", plugin=ep.name, error=str(exc))
            continue
        locations.extend(path for path in found if path not in locations)
    return locations


def _migration_locations(pm: pluggy.PluginManager) -> list[str]:
    def failed(plugin: str, exc: Exception) -> None:
        raise StartupError(f"plugin {plugin!r} failed in migration_locations: {exc}") from exc

    answers = hooks.runner(pm).call("migration_locations", {}, failed)
    return [str(path) for _, path in answers if path]


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
