"""The plugin's tables, and the three columns of statusflow's ``orders`` table it reads.

``easypost_tracking_numbers``
    Every tracking number that went by on a stored event (``data.tracking_number``),
    once per order the event resolved to, written by ``prepare_moves`` in the event's
    own transaction. The number is kept in its comparison form (:func:`tracking_key`),
    indexed; ``carrier`` as the event's ``data.carrier`` gave it, or ``NULL``.
``easypost_shipped``
    One row per (tracker, order) that got its ``shipment.shipped``: the EasyPost event
    that claimed it. The primary key makes the claim race-free across processes.

``orders`` is the kernel's table: the lookup of ``fields.tracking_number`` reads its
``id``, ``created_at`` and ``doc`` (an order's JSON document, whose ``fields`` are the
API's ``fields``). The plugin's migration adds one expression index to it, on the
comparison form of ``fields.tracking_number``; :func:`field_text` writes the same
expression, so that both databases answer the lookup from that index.

Times are ISO-8601 UTC strings of one fixed width (``statusflow.utc_now``).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

TRACKING_NUMBERS = sa.Table(
    "easypost_tracking_numbers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tracking_number", sa.String(200), nullable=False, index=True),
    sa.Column("carrier", sa.String(100), nullable=True),
    sa.Column("order_id", sa.String(200), nullable=False),
    sa.Column("event_id", sa.String(200), nullable=False),
    sa.Column("recorded_at", sa.String(40), nullable=False),
)

SHIPPED = sa.Table(
    "easypost_shipped",
    metadata,
    sa.Column("tracker_id", sa.String(200), primary_key=True),
    sa.Column("order_id", sa.String(200), primary_key=True),
    sa.Column("event_id", sa.String(200), nullable=False),
    sa.Column("at", sa.String(40), nullable=False),
)

ORDERS = sa.Table(
    "orders",
    sa.MetaData(),  # the kernel's table: not part of this plugin's schema
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("doc", sa.JSON, nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
)

MAX_TRACKING_NUMBER = 200
"""Longest tracking number recorded (the column's width; real ones are under 40)."""
MAX_CARRIER = 100
"""Longest carrier name recorded; a longer one is recorded as unknown."""

_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def tracking_key(number: str) -> str:
    """A tracking number's comparison form: without spaces, ASCII letters upper-case.

    SQL's ``upper(replace(x, ' ', ''))`` makes the same of ASCII text on both databases
    (the expression index of ``fields.tracking_number``).
    """
    return number.replace(" ", "").translate(_ASCII_UPPER)


def carrier_key(carrier: str) -> str:
    """A carrier's comparison form: its letters and digits, lower-case (``"FedEx"``,
    ``"fedex"`` and ``"Fed Ex"`` are one carrier; ``""`` is an unknown one)."""
    return "".join(c for c in carrier.lower() if c.isalnum())


_FIELD = {
    "sqlite": "json_extract(orders.doc, '$.fields.{name}')",
    "postgresql": "(orders.doc -> 'fields') ->> '{name}'",
}


def field_text(dialect: str, name: str) -> str:
    """SQL for an order's ``fields.NAME`` as text (``NULL`` when absent), on ``dialect``
    (``"sqlite"`` or ``"postgresql"``); ``name`` is one of this module's constants."""
    return _FIELD[dialect].format(name=name)


def tracking_number_column(dialect: str) -> sa.ColumnElement[str]:
    """An order's ``fields.tracking_number`` in comparison form: the expression of the
    index ``ix_easypost_orders_tracking_number``, written as the migration wrote it."""
    text = f"upper(replace({field_text(dialect, 'tracking_number')}, ' ', ''))"
    return sa.literal_column(text, sa.String)


def carrier_column(dialect: str) -> sa.ColumnElement[str]:
    """An order's ``fields.carrier`` as text, ``NULL`` when absent."""
    return sa.literal_column(field_text(dialect, "carrier"), sa.String)
