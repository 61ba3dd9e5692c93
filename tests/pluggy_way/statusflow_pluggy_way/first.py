"""The plugin ``pw_a_first``: registered first of the four, yet its ``tryfirst``
implementation runs before the others."""

from __future__ import annotations

from statusflow import Event
from statusflow_pluggy_way import hookimpl, note


@hookimpl(tryfirst=True)
def inspect_event(event: Event) -> None:
    note(event, "pw_a_first")
