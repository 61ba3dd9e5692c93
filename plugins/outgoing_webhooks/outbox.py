"""The outbox's database work: fan-out, claim, finish, and the endpoints of the config.

Every statement here is SQLAlchemy Core through ``kernel.read()`` / ``kernel.write()``,
on SQLite and PostgreSQL alike; the few differences are marked.

The life of a delivery:

1. ``prepare_moves`` inserts one ``outgoing_webhooks_moves`` row per move, in the move's
   own transaction (see ``__init__.py``).
2. :func:`fan_out` turns those rows into one ``pending`` delivery per enabled endpoint
   and deletes them, in one transaction. Only one process fans out at a time (a
   transaction-scoped advisory lock on PostgreSQL; SQLite has a single writer), and
   rows are taken in id order, so a move of an order always gets its deliveries before
   any later move of the same order.
3. :func:`claim` leases due deliveries that head their chain (no earlier pending
   delivery of the same order to the same endpoint, no earlier move of the order still
   waiting for fan-out): ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so concurrent
   processes never claim the same row, and a lease (``lease_until``) that another
   process may take over once it expired (a process killed mid-delivery).
4. :func:`finish` records the attempt's result, only if the lease is still ours.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
import structlog
from sqlalchemy.dialects import postgresql, sqlite

from statusflow import KernelServices, format_timestamp, parse_timestamp
from statusflow.plugins.outgoing_webhooks.settings import EndpointConfig
from statusflow.plugins.outgoing_webhooks.tables import (
    DELIVERED,
    DELIVERIES,
    ENDPOINTS,
    FAILED,
    MOVES,
    PENDING,
)

log = structlog.get_logger("statusflow.outgoing_webhooks")

FAN_OUT_LOCK = 7346152
"""PostgreSQL advisory lock key of the fan-out (the kernel's migration lock is 7346151)."""
SYNC_LOCK = 7346153
"""PostgreSQL advisory lock key of the start-up sync of the configured endpoints."""

PAYLOAD_TYPE = "order.moved"


def now() -> datetime:
    """The current time, in UTC."""
    return datetime.now(UTC)


def payload(delivery_id: str, endpoint_id: str, move: Any) -> bytes:
    """The body of a delivery: fixed when the delivery is made, the same at every attempt."""
    manual = move.trigger_id is None and move.event_id is None and move.action_id is None
    return orjson.dumps(
        {
            "type": PAYLOAD_TYPE,
            "delivery_id": delivery_id,
            "endpoint_id": endpoint_id,
            "order_id": move.order_id,
            "from": move.from_status,
            "to": move.to_status,
            "trigger_id": move.trigger_id,
            "event_id": move.event_id,
            "event_type": move.event_type,
            "action_id": move.action_id,
            "manual": manual,
            "at": move.at,
        }
    )


# --- endpoints of the configuration file -------------------------------------------------


async def sync_config_endpoints(
    kernel: KernelServices, endpoints: Sequence[EndpointConfig]
) -> None:
    """Make the stored ``config`` endpoints those of the file (run at start-up).

    New ones are added, changed ones updated, and the ones no longer in the file are
    deleted with their deliveries. An endpoint id already taken by an API endpoint stops
    start-up.
    """
    at = format_timestamp(now())
    async with kernel.write() as conn:
        if conn.dialect.name == "postgresql":  # processes starting together take turns
            await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(SYNC_LOCK)))
        rows = (await conn.execute(sa.select(ENDPOINTS.c.id, ENDPOINTS.c.source))).all()
        stored = {row.id: row.source for row in rows}
        clashes = sorted(e.id for e in endpoints if stored.get(e.id) == "api")
        if clashes:
            raise ValueError(
                f"endpoint id(s) {', '.join(clashes)} of [plugins.outgoing_webhooks] are "
                "already used by endpoints created through the API"
            )
        wanted = {e.id for e in endpoints}
        gone = [i for i, source in stored.items() if source == "config" and i not in wanted]
        if gone:
            await conn.execute(sa.delete(DELIVERIES).where(DELIVERIES.c.endpoint_id.in_(gone)))
            await conn.execute(sa.delete(ENDPOINTS).where(ENDPOINTS.c.id.in_(gone)))
            log.warning("endpoints.removed_from_config", endpoint_ids=gone)
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        for e in endpoints:
            values = {
                "url": e.url,
                "secret": e.secret,
                "description": e.description,
                "enabled": e.enabled,
                "source": "config",
                "updated_at": at,
            }
            statement = dialect.insert(ENDPOINTS).values(id=e.id, created_at=at, **values)
            await conn.execute(statement.on_conflict_do_update(index_elements=["id"], set_=values))


# --- fan-out -----------------------------------------------------------------------------


async def fan_out(kernel: KernelServices, batch_size: int, give_up_after: float) -> int:
    """Turn up to ``batch_size`` queued moves into deliveries; how many moves were taken."""
    async with kernel.read() as conn:  # the cheap, common answer: nothing queued
        if (await conn.execute(sa.select(MOVES.c.id).limit(1))).first() is None:
            return 0
    async with kernel.write() as conn:
        if conn.dialect.name == "postgresql":
            locked = await conn.scalar(sa.select(sa.func.pg_try_advisory_xact_lock(FAN_OUT_LOCK)))
            if not locked:
                return 0  # another process is fanning out right now
        queued = sa.select(MOVES.c.id).order_by(MOVES.c.id).limit(batch_size)
        ids = (await conn.execute(queued)).scalars().all()
        if not ids:
            return 0
        endpoints = (
            (
                await conn.execute(
                    sa.select(ENDPOINTS.c.id)
                    .where(ENDPOINTS.c.enabled == sa.true())
                    .order_by(ENDPOINTS.c.id)
                )
            )
            .scalars()
            .all()
        )
        if not endpoints:  # nobody to tell: the moves are done with
            await conn.execute(sa.delete(MOVES).where(MOVES.c.id.in_(ids)))
            return len(ids)
        moves = (
            await conn.execute(sa.select(MOVES).where(MOVES.c.id.in_(ids)).order_by(MOVES.c.id))
        ).all()
        created = now()
        at = format_timestamp(created)
        give_up_at = format_timestamp(created + timedelta(seconds=give_up_after))
        rows = []
        for move in moves:
            for endpoint_id in endpoints:
                delivery_id = str(uuid.uuid4())
                rows.append(
                    {
                        "id": delivery_id,
                        "endpoint_id": endpoint_id,
                        "move_seq": move.id,
                        "order_id": move.order_id,
                        "body": payload(delivery_id, endpoint_id, move).decode(),
                        "state": PENDING,
                        "attempts": 0,
                        "created_at": at,
                        "next_attempt_at": at,
                        "give_up_at": give_up_at,
                    }
                )
        if rows:
            await conn.execute(DELIVERIES.insert(), rows)
        # by id, never "id <= max": a move that committed meanwhile with a lower id
        # (sequence order is not commit order on PostgreSQL) must stay queued
        await conn.execute(sa.delete(MOVES).where(MOVES.c.id.in_(ids)))
    return len(ids)


# --- claiming ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    """A delivery this process holds the lease of."""

    seq: int
    id: str
    token: str
    endpoint_id: str
    order_id: str
    url: str
    secret: str
    body: bytes
    attempts: int
    give_up_at: str


def _head_of_chain() -> sa.ColumnElement[bool]:
    """No earlier pending delivery of the order to the endpoint, no earlier queued move."""
    earlier = DELIVERIES.alias("earlier")
    return sa.and_(
        ~sa.exists().where(
            earlier.c.endpoint_id == DELIVERIES.c.endpoint_id,
            earlier.c.order_id == DELIVERIES.c.order_id,
            earlier.c.state == PENDING,
            earlier.c.move_seq < DELIVERIES.c.move_seq,
        ),
        ~sa.exists().where(
            MOVES.c.order_id == DELIVERIES.c.order_id, MOVES.c.id < DELIVERIES.c.move_seq
        ),
    )


@functools.cache
def _claimable(limit: int, lock: bool = False) -> sa.Select[Any]:
    """Due deliveries at the head of their chain, ``at`` bound when executed (built once
    per limit: the worker asks often, and building the statement costs more than running
    it on an idle outbox)."""
    at = sa.bindparam("at", type_=sa.String)
    free = sa.or_(DELIVERIES.c.lease_until.is_(None), DELIVERIES.c.lease_until <= at)
    query = (
        sa.select(DELIVERIES.c.seq)
        .join(ENDPOINTS, ENDPOINTS.c.id == DELIVERIES.c.endpoint_id)
        .where(
            DELIVERIES.c.state == PENDING,
            ENDPOINTS.c.enabled == sa.true(),
            DELIVERIES.c.next_attempt_at <= at,
            free,
            _head_of_chain(),
        )
        .order_by(DELIVERIES.c.next_attempt_at, DELIVERIES.c.seq)
        .limit(limit)
    )
    return query.with_for_update(skip_locked=True, of=DELIVERIES) if lock else query


async def claim(kernel: KernelServices, limit: int, lease: float) -> list[Claimed]:
    """Lease up to ``limit`` due deliveries for ``lease`` seconds; count the attempt."""
    moment = now()
    at = format_timestamp(moment)
    async with kernel.read() as conn:  # no write transaction when nothing is due
        if (await conn.execute(_claimable(1), {"at": at})).first() is None:
            return []
    token = uuid.uuid4().hex
    async with kernel.write() as conn:
        query = _claimable(limit, lock=conn.dialect.name == "postgresql")
        seqs = (await conn.execute(query, {"at": at})).scalars().all()
        if not seqs:
            return []
        await conn.execute(
            sa.update(DELIVERIES)
            .where(DELIVERIES.c.seq.in_(seqs))
            .values(
                lease_until=format_timestamp(moment + timedelta(seconds=lease)),
                lease_token=token,
                attempts=DELIVERIES.c.attempts + 1,
                last_attempt_at=at,
            )
        )
        rows = (
            await conn.execute(
                sa.select(DELIVERIES, ENDPOINTS.c.url, ENDPOINTS.c.secret)
                .join(ENDPOINTS, ENDPOINTS.c.id == DELIVERIES.c.endpoint_id)
                .where(DELIVERIES.c.seq.in_(seqs))
                .order_by(DELIVERIES.c.seq)
            )
        ).all()
    return [
        Claimed(
            seq=r.seq,
            id=r.id,
            token=token,
            endpoint_id=r.endpoint_id,
            order_id=r.order_id,
            url=r.url,
            secret=r.secret,
            body=r.body.encode(),
            attempts=r.attempts,
            give_up_at=r.give_up_at,
        )
        for r in rows
    ]


@functools.cache
def _next_due() -> sa.Select[Any]:
    lease_ends_later = sa.and_(
        DELIVERIES.c.lease_until.is_not(None),
        DELIVERIES.c.lease_until > DELIVERIES.c.next_attempt_at,
    )
    due = sa.case((lease_ends_later, DELIVERIES.c.lease_until), else_=DELIVERIES.c.next_attempt_at)
    return (
        sa.select(sa.func.min(due))
        .select_from(DELIVERIES.join(ENDPOINTS, ENDPOINTS.c.id == DELIVERIES.c.endpoint_id))
        .where(
            DELIVERIES.c.state == PENDING,
            ENDPOINTS.c.enabled == sa.true(),
            _head_of_chain(),
        )
    )


async def next_due(kernel: KernelServices) -> datetime | None:
    """When the earliest head of a chain may be claimed (its schedule or its lease's end)."""
    async with kernel.read() as conn:
        value = await conn.scalar(_next_due())
    return None if value is None else parse_timestamp(value)


async def prune(kernel: KernelServices, older_than: float, limit: int = 1000) -> int:
    """Delete up to ``limit`` deliveries delivered more than ``older_than`` seconds ago;
    how many. Pending and failed ones stay (the dead letter waits for a person)."""
    before = format_timestamp(now() - timedelta(seconds=older_than))
    old = (
        sa.select(DELIVERIES.c.seq)
        .where(DELIVERIES.c.state == DELIVERED, DELIVERIES.c.delivered_at < before)
        .limit(limit)
        .scalar_subquery()
    )
    async with kernel.write() as conn:
        result = await conn.execute(sa.delete(DELIVERIES).where(DELIVERIES.c.seq.in_(old)))
    return int(result.rowcount or 0)


# --- results -----------------------------------------------------------------------------


async def finish(
    kernel: KernelServices,
    claimed: Claimed,
    *,
    status: int | None,
    error: str | None,
    retry_at: datetime | None,
) -> bool:
    """Record an attempt: delivered (``error`` is None), retried at ``retry_at``, or dead.

    :return: whether the lease was still ours (else another process has taken the
        delivery over, and its result wins).
    """
    at = format_timestamp(now())
    values: dict[str, Any] = {
        "lease_until": None,
        "lease_token": None,
        "last_status": status,
        "last_error": None if error is None else error[:1000],
    }
    if error is None:
        values.update(state=DELIVERED, delivered_at=at)
    elif retry_at is None:
        values.update(state=FAILED, failed_at=at)
    else:
        values.update(next_attempt_at=format_timestamp(retry_at))
    async with kernel.write() as conn:
        result = await conn.execute(
            sa.update(DELIVERIES)
            .where(DELIVERIES.c.seq == claimed.seq, DELIVERIES.c.lease_token == claimed.token)
            .values(**values)
        )
    return bool(result.rowcount == 1)


async def release(kernel: KernelServices, claimed: Sequence[Claimed]) -> None:
    """Give leases back unfinished (shutting down): those deliveries are due again now.

    A delivery whose result was recorded meanwhile (its lease is no longer ours) is
    left as it is.
    """
    if not claimed:
        return
    async with kernel.write() as conn:
        for c in claimed:
            await conn.execute(
                sa.update(DELIVERIES)
                .where(DELIVERIES.c.seq == c.seq, DELIVERIES.c.lease_token == c.token)
                .values(lease_until=None, lease_token=None)
            )
