"""The plugin ``pw_z_last``: registered last of the four, yet its ``trylast``
implementation runs after the others."""

from __future__ import annotations

from statusflow import Event
from statusflow_pluggy_way import hookimpl, note


@hookimpl(trylast=True)
def inspect_event(event: Event) -> None:
    note(event, "pw_z_last")
