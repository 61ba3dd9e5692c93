"""The board's reads (``/ui/``): how many orders each status holds, in one grouped
query, and a cheap version of what the board's counts show, for its live stream."""

from __future__ import annotations

from sqlalchemy import func, select

from statusflow.store.queries import ORDERS, TIMELINE
from statusflow.store.statements import DEFINITIONS_VERSION, StoreSQL

ORDER_COUNTS = select(ORDERS.c.status.label("status"), func.count().label("orders")).group_by(
    ORDERS.c.status
)
"""``(status, orders)``: one row per status that holds orders."""
LAST_TIMELINE_ENTRY = select(func.coalesce(func.max(TIMELINE.c.seq), 0).label("seq"))
"""The newest timeline entry's ``seq``: an order created, moved or told of an event."""


async def order_counts(sql: StoreSQL) -> dict[str, int]:
    """How many orders are in each status (statuses with none are left out)."""
    return {str(row["status"]): int(row["orders"]) for row in await sql.rows(ORDER_COUNTS)}


async def board_version(sql: StoreSQL) -> tuple[int, str | None]:
    """Changes whenever the board's counts or definitions may have changed: the newest
    timeline entry (every move and every new order adds one) and the definitions
    version (triggers, actions, statuses)."""
    rows = await sql.rows(LAST_TIMELINE_ENTRY)
    return int(rows[0]["seq"] or 0), await sql.setting(DEFINITIONS_VERSION)
