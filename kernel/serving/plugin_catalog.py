"""The catalog of installed plugins, enabled or not: what ``statusflow plugins`` and
``GET /api/plugins`` list, and every plugin's migrations (a disabled plugin's too).

Disabled plugins are imported into a throwaway plugin manager only to read what they
declare; none of their other hooks is called.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pluggy
import structlog

from statusflow import hooks, hookspecs
from statusflow.errors import StartupError
from statusflow.registry import ENTRY_POINT_GROUP, Source, _collect, _dist_of, _load, _sources
from statusflow.serving.plugin_dirs import DirPlugin

log = structlog.get_logger("statusflow.plugins")


@dataclass(frozen=True)
class PluginInfo:
    """One plugin found through an entry point."""

    name: str
    distribution: str | None
    version: str | None
    trigger_types: tuple[str, ...]
    enabled: bool
    path: str | None = None
    """The file or folder of a plugin from a plugins folder (it has no distribution)."""
    action_types: tuple[str, ...] = ()
    """Its action types (the contract's JSON listing shows only the trigger types: see
    ``GET /api/action-types``)."""

    def as_json(self) -> dict[str, Any]:
        """As ``GET /api/plugins`` and ``statusflow plugins --json`` show it (``path``
        only for a plugin from a plugins folder)."""
        shown: dict[str, Any] = {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "trigger_types": list(self.trigger_types),
            "enabled": self.enabled,
        }
        if self.path is not None:
            shown["path"] = self.path
        return shown


def list_plugins(
    disable: Iterable[str] = (), enable: Iterable[str] | None = None, dirs: Iterable[str] = ()
) -> list[PluginInfo]:
    """Every plugin found through entry points and in the ``dirs``, enabled or not, with
    its trigger types.

    Disabled plugins are imported into a throwaway manager only to read their trigger
    types; none of their hooks is called otherwise.
    """
    disabled = set(disable)
    allowed = set(enable) if enable is not None else None
    infos = []
    for ep in _sources(dirs):
        enabled = ep.name not in disabled and (allowed is None or ep.name in allowed)
        dist, version = _dist_of(ep)
        path = str(ep.path) if isinstance(ep, DirPlugin) else None
        triggers, actions = _types_of(ep)
        infos.append(PluginInfo(ep.name, dist, version, triggers, enabled, path, actions))
    return infos


def _types_of(ep: Source) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The trigger types and the action types a plugin registers."""
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    try:
        pm.register(_load(ep), name=ep.name)
        triggers = tuple(item.type for _, item in _collect(pm, "register_trigger_types"))
        return triggers, tuple(item.type for _, item in _collect(pm, "register_action_types"))
    except Exception as exc:
        log.warning("plugin.introspection_failed", plugin=ep.name, error=str(exc))
        return (), ()


def migration_locations(pm: pluggy.PluginManager, dirs: Iterable[str] = ()) -> list[str]:
    """The folders of the Alembic migrations of every installed plugin (and of every
    plugin of the plugins folders ``dirs``), disabled ones too.

    Alembic keeps only each branch's head in ``alembic_version``, and refuses to start
    when it cannot locate one: a disabled plugin's migrations stay on the path, so that
    disabling a plugin with tables never stops start-up (its tables are kept, unused).
    """
    locations = _migration_locations(pm)
    for ep in _sources(dirs):
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
