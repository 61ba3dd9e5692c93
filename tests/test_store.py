"""The store's connection runs plugins' SQLAlchemy Core statements on the bare drivers:
compiled once per shape, each call with its own values, answering SQLAlchemy's small
result API; and the admin API's writes take the event path's kind of transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa

from statusflow.store.database import Database, migrate
from statusflow.store.schema import KernelSetting, Order, Trigger
from statusflow.store.statements import ConstraintViolated

SETTINGS = KernelSetting.__table__  # type: ignore[attr-defined]
ORDERS = Order.__table__  # type: ignore[attr-defined]
TRIGGERS = Trigger.__table__  # type: ignore[attr-defined]


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    await migrate(database_url)
    store = Database(database_url)
    try:
        yield store
    finally:
        await store.dispose()


def _named(key: str) -> sa.Select[tuple[str]]:
    return sa.select(SETTINGS.c.value).where(SETTINGS.c.key == key)


async def test_a_statement_of_a_seen_shape_runs_with_its_own_values(db: Database) -> None:
    async with db.write() as conn:
        await conn.execute(
            SETTINGS.insert(), [{"key": f"k{i}", "value": f"v{i}"} for i in range(5)]
        )
    async with db.read() as conn:
        # one shape, compiled once, five sets of values
        assert [await conn.scalar(_named(f"k{i}")) for i in range(5)] == [f"v{i}" for i in range(5)]
        # an IN of lists of different lengths: the SQL grows with the list
        for keys in (["k1"], ["k0", "k3", "k4"], ["k2", "nope"]):
            query = sa.select(SETTINGS.c.key).where(SETTINGS.c.key.in_(keys)).order_by("key")
            assert (await conn.execute(query)).scalars().all() == sorted(set(keys) - {"nope"})
        assert await conn.scalar(_named("nope")) is None


async def test_results_read_as_sqlalchemy_results_do(db: Database) -> None:
    doc = {"amount": 12.5, "fields": {"gift": True}, "tags": ["a", "b"]}
    async with db.write() as conn:
        await conn.execute(
            ORDERS.insert().values(id="o1", status="N", doc=doc, created_at="t", updated_at="t")
        )
        await conn.execute(
            sa.insert(TRIGGERS),
            {
                "type": "t",
                "status": "P",
                "name": "",
                "allow_backwards": False,
                "enabled": True,
                "settings": {},
                "conditions": [{"field": "x"}],
                "secret": "s1",
                "created_at": "t",
            },
        )
    async with db.read() as conn:
        row = (await conn.execute(sa.select(ORDERS).where(ORDERS.c.id == "o1"))).one()
        assert (row.id, row.status, row.doc) == ("o1", "N", doc)  # JSON decoded
        assert row[0] == "o1" and row._mapping["doc"] == doc
        trigger = (await conn.execute(sa.select(TRIGGERS))).mappings().one()
        assert trigger["enabled"] is True and trigger["allow_backwards"] is False
        assert trigger["conditions"] == [{"field": "x"}]
        count = await conn.scalar(sa.select(sa.func.count()).select_from(ORDERS))
        assert count == 1
        found = await conn.execute(sa.text("SELECT id FROM orders WHERE id = :id"), {"id": "o1"})
        assert [r[0] for r in found] == ["o1"]
        assert (await conn.execute(_named("nope"))).first() is None


async def test_writes_say_how_many_rows_they_changed(db: Database) -> None:
    async with db.write() as conn:
        await conn.execute(SETTINGS.insert(), [{"key": k, "value": "0"} for k in "abc"])
        changed = await conn.execute(
            sa.update(SETTINGS).where(SETTINGS.c.key.in_(["a", "b"])).values(value="1")
        )
        assert changed.rowcount == 2
        gone = await conn.execute(sa.delete(SETTINGS).where(SETTINGS.c.key == "c"))
        assert gone.rowcount == 1
    async with db.read() as conn:
        rows = (await conn.execute(sa.select(SETTINGS).order_by(SETTINGS.c.key))).all()
        assert [(r.key, r.value) for r in rows if r.key in "abc"] == [("a", "1"), ("b", "1")]


async def test_a_write_that_fails_rolls_back_whole(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.write() as conn:
            await conn.execute(SETTINGS.insert().values(key="gone", value="1"))
            raise RuntimeError("a plugin failed")
    with pytest.raises(ConstraintViolated):
        async with db.write() as sql:
            await sql.insert_order("o1", "N", {}, "t")
            await sql.insert_order("o1", "N", {}, "t")  # the same id again
    # a plugin's statement breaking a constraint raises what SQLAlchemy's connection did
    with pytest.raises(sa.exc.IntegrityError):
        async with db.write() as conn:
            await conn.execute(SETTINGS.insert(), [{"key": "twice", "value": "1"}] * 2)
    async with db.read() as conn:
        assert await conn.scalar(_named("gone")) is None
        assert not await conn.order_exists("o1")


async def test_a_column_default_computed_in_python_is_refused(db: Database) -> None:
    """Such defaults are SQLAlchemy's to compute at execution: the store says so rather
    than store a NULL."""
    table = sa.Table(
        "kernel_settings",
        sa.MetaData(),
        sa.Column("key", sa.String, primary_key=True),
        sa.Column("value", sa.String, default=lambda: "made in Python"),
    )
    with pytest.raises(ValueError, match="pass every value"):
        async with db.write() as conn:
            await conn.execute(table.insert(), {"key": "a"})
