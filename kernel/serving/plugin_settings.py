"""Each plugin's ``[plugins.NAME]`` table: secrets taken from the environment, then
checked against the schema the plugin declares (``plugin_settings_schema``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, cast

import jsonschema
import pluggy
import structlog

from statusflow import hooks
from statusflow.errors import StartupError
from statusflow.registry import KERNEL_PLUGINS
from statusflow.serving import setting_errors

log = structlog.get_logger("statusflow.plugins")


def resolve_env(value: Any, where: str) -> Any:
    """Replace every ``{"$env": "VAR"}`` in ``value`` by the environment variable."""
    if isinstance(value, dict):
        if set(value) == {"$env"}:
            name = value["$env"]
            if not isinstance(name, str) or name not in os.environ:
                raise StartupError(f"{where}: environment variable {name!r} is not set")
            return os.environ[name]
        return {k: resolve_env(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_env(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def plugin_settings(
    pm: pluggy.PluginManager, tables: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Each loaded plugin's ``[plugins.NAME]`` table, secrets resolved, schema-checked.

    A table of a plugin that is not loaded is left alone with a warning (the names of
    installed plugins close to it, when it is none of theirs: a typo, most likely).

    :raises StartupError: naming the plugin and the key that is wrong.
    """
    installed = {name for name, _ in pm.list_name_plugin()} - set(KERNEL_PLUGINS)  # + blocked
    resolved: dict[str, dict[str, Any]] = {}
    for name, table in tables.items():
        if pm.get_plugin(name) is None:
            reason, hint = "plugin not loaded", None
            if name not in installed:
                reason = "no such plugin installed"
                hint = setting_errors.did_you_mean(name, installed).strip(" ()") or None
            log.warning("plugin.settings_unused", plugin=name, reason=reason, hint=hint)
            continue
        resolved[name] = resolve_env(dict(table), f"[plugins.{name}]")
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
        if errors:  # said without the value: it may be a secret (setting_errors)
            error = errors[0]
            key = setting_errors.where(error)
            where = f"[plugins.{impl.plugin_name}]" + (f" {key}" if key else "")
            message = setting_errors.describe(error)
            raise StartupError(f"plugin {impl.plugin_name!r}: {where}: {message}")
    with_schema = {impl.plugin_name for impl in hooks.runner(pm).plan("plugin_settings_schema")}
    for name in sorted(set(resolved) - with_schema):  # the plugin reads no settings at all
        log.warning("plugin.settings_unused", plugin=name, reason="plugin takes no settings")
    return resolved
