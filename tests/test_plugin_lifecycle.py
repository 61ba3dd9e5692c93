"""The lifecycle hooks: a plugin's own migrations, its rows in the event's transaction,
and background work between ``startup`` and ``shutdown`` (the ``notes`` test plugin)."""

from __future__ import annotations

import pytest
from notes_plugin import NOTES, NotesPlugin
from sqlalchemy import select

from statusflow.http.keys import SERVICES


@pytest.mark.parametrize("statusflow_database", ["sqlite", "postgres"])
async def test_a_plugin_with_its_own_table_and_a_background_worker(
    statusflow_app, statusflow_database
):
    notes = NotesPlugin()
    sf = await statusflow_app(plugins=["payment", ("notes", notes)])
    dialect = {"sqlite": "sqlite", "postgres": "postgresql"}[statusflow_database]
    assert notes.dialect == dialect  # startup ran, after the database was ready
    await sf.create_order("o1")
    await sf.create_order("o2")
    await sf.create_trigger("payment.received", "P")
    await sf.post_event(id="e1", type="payment.received", order_id="o1")
    await sf.post_event(id="e2", type="payment.received", order_id="o2")
    await sf.post_event(id="e3", type="payment.received", order_id="o1")  # no move
    await sf.post_event(id="e1", type="payment.received", order_id="o1")  # duplicate
    kernel = sf.app[SERVICES]
    async with kernel.read() as conn:
        rows = (await conn.execute(select(NOTES).order_by(NOTES.c.id))).mappings().all()
    assert [(r["order_id"], r["to_status"], r["event_id"]) for r in rows] == [
        ("o1", "P", "e1"),
        ("o2", "P", "e2"),
    ]
    await notes.drained()
    assert notes.counted == 2 and not notes.stopped
    # dry runs write nothing to the plugin's table either
    await sf.create_order("o3")
    await sf.post_event(type="payment.received", order_id="o3", dry_run=True)
    async with kernel.read() as conn:
        assert len((await conn.execute(select(NOTES))).all()) == 2
    await sf.close()
    assert notes.stopped
