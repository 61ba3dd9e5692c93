"""statusflow-reviews: product reviews move orders.

One plugin with the three kinds of hook, built only on what ``docs/hooks.md`` documents:

* **event source**: the event ``review.posted`` (``data``: ``rating`` 1 to 5, required;
  ``text``; ``product_id``) and two trigger types that listen to it,
  ``review.negative`` (``rating <= max_rating``, default 2) and ``review.positive``
  (``rating >= min_rating``, default 4);
* **condition matcher**: the operator ``matches``, a regular expression searched in a
  string field, usable in the ``conditions`` of any trigger. Patterns are RE2 (the
  ``google-re2`` bindings): matching takes time linear in the string, whatever the
  pattern, so a hostile pattern such as ``(a+)+$`` cannot stall the server. A pattern
  is compiled once per trigger, and both the pattern and the string tested are capped;
* **status sink**: every move made by a ``review.*`` trigger is written, in the move's
  own transaction, to the plugin's table ``reviews_moves`` (its own Alembic migration),
  so that every server process on the database counts the same; ``GET
  /sources/reviews/stats`` answers the counts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import re2
import sqlalchemy as sa
from aiohttp import web

from statusflow import (
    JSON,
    MATCHED,
    ConditionOperator,
    Event,
    EventType,
    KernelServices,
    Match,
    Outcome,
    Route,
    Transaction,
    TriggerType,
    hookimpl,
    json_response,
)

NAME = "reviews"
POSTED = "review.posted"
NEGATIVE = "review.negative"
POSITIVE = "review.positive"
TRIGGER_TYPES = (NEGATIVE, POSITIVE)
STATS_PATH = "/sources/reviews/stats"
MIGRATIONS = Path(__file__).resolve().with_name("migrations")

# --- event source: review.posted, review.negative, review.positive ---------------------

DATA_SCHEMA: dict[str, JSON] = {
    "type": "object",
    "required": ["rating"],
    "properties": {
        "rating": {"type": "integer", "minimum": 1, "maximum": 5},
        "text": {"type": "string", "maxLength": 20000},
        "product_id": {"type": "string", "minLength": 1, "maxLength": 200},
    },
}


def rating_settings(key: str, default: int, meaning: str) -> dict[str, JSON]:
    """The settings schema of a trigger type with one rating bound, 1 to 5."""
    bound = {"type": "integer", "minimum": 1, "maximum": 5, "default": default}
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {key: {**bound, "description": meaning}},
    }


NEGATIVE_SETTINGS = rating_settings("max_rating", 2, "the highest rating that counts as negative")
POSITIVE_SETTINGS = rating_settings("min_rating", 4, "the lowest rating that counts as positive")


def normalize(data: dict[str, JSON]) -> dict[str, JSON]:
    """A rating sent as ``5.0`` (an integer to JSON Schema) is stored as ``5``."""
    return {**data, "rating": int(data["rating"])}


def match_negative(settings: Mapping[str, JSON], event: Event) -> Match:
    """A review rated ``max_rating`` (default 2) or lower."""
    most = settings.get("max_rating", 2)
    rating = event.data["rating"]
    if rating <= most:
        return MATCHED
    return Match(False, f"rating is {rating}, trigger wants at most {most}")


def match_positive(settings: Mapping[str, JSON], event: Event) -> Match:
    """A review rated ``min_rating`` (default 4) or higher."""
    least = settings.get("min_rating", 4)
    rating = event.data["rating"]
    if rating >= least:
        return MATCHED
    return Match(False, f"rating is {rating}, trigger wants at least {least}")


@hookimpl
def register_event_types(register: Callable[[EventType], None]) -> None:
    register(EventType(POSTED, "Review posted", DATA_SCHEMA, normalize))


@hookimpl
def register_trigger_types(register: Callable[[TriggerType], None]) -> None:
    register(TriggerType(NEGATIVE, "Negative review", (POSTED,), NEGATIVE_SETTINGS, match_negative))
    register(TriggerType(POSITIVE, "Positive review", (POSTED,), POSITIVE_SETTINGS, match_positive))


# --- condition matcher: the operator ``matches`` ----------------------------------------

# RE2 searches in time proportional to (program size) x (string length), whatever the
# pattern: these three numbers bound the time and memory of one condition (about 40 ms
# at worst for the largest program on the longest string, far less for usual patterns).
MAX_PATTERN = 500
"""Characters of a pattern (longer: 422 when the trigger is saved)."""
MAX_PROGRAM = 200
"""Instructions of a pattern's compiled RE2 program (more: 422 when the trigger is saved)."""
MAX_SUBJECT = 20_000
"""Characters of the string tested (longer: the condition fails, saying why)."""
PATTERN_MEMORY = 256 * 1024
"""Bytes RE2 may use for one compiled pattern and its cache."""


def compile_pattern(value: JSON) -> Any:
    """The condition's ``value`` compiled with RE2, once per trigger; ``ValueError`` if bad."""
    options = re2.Options()
    options.max_mem = PATTERN_MEMORY
    options.never_capture = True  # only "does it match" counts
    options.log_errors = False  # a bad pattern is the user's 422, not a server log line
    try:
        pattern = re2.compile(value, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode(errors="replace")
        raise ValueError(f"not a valid RE2 pattern: {reason}") from None
    if pattern.programsize > MAX_PROGRAM:
        raise ValueError(
            f"pattern too complex: {pattern.programsize} RE2 instructions, at most {MAX_PROGRAM}"
        )
    return pattern


def matches(actual: JSON, pattern: Any) -> bool:
    """Whether ``pattern`` is found anywhere in the string ``actual`` (anchor it with ^ $)."""
    if not isinstance(actual, str):
        raise TypeError(f"matches needs a string, the field is {type(actual).__name__}")
    if len(actual) > MAX_SUBJECT:
        raise ValueError(f"the string is longer than {MAX_SUBJECT} characters")
    return pattern.search(actual) is not None


MATCHES = ConditionOperator(
    "matches",
    matches,
    {"type": "string", "minLength": 1, "maxLength": MAX_PATTERN},
    compile=compile_pattern,
)


@hookimpl
def register_condition_operators(register: Callable[[ConditionOperator], None]) -> None:
    register(MATCHES)


# --- status sink: the moves of review triggers, counted ---------------------------------

metadata = sa.MetaData()
MOVES = sa.Table(
    "reviews_moves",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("order_id", sa.String(200), nullable=False),
    sa.Column("trigger_id", sa.Integer, nullable=False),
    sa.Column("trigger_type", sa.String(100), nullable=False),
    sa.Column("from_status", sa.String(64), nullable=False),
    sa.Column("to_status", sa.String(64), nullable=False),
    sa.Column("rating", sa.Integer, nullable=True),
    sa.Column("event_id", sa.String(200), nullable=True),
    sa.Column("at", sa.String(40), nullable=False),
)


@hookimpl
def migration_locations() -> str:
    return str(MIGRATIONS)


@hookimpl
def prepare_moves(outcome: Outcome, tx: Transaction) -> None:
    """One ``reviews_moves`` row per move of a review trigger, committed with the move."""
    for move in outcome.moves:
        if move.trigger_type not in TRIGGER_TYPES or move.trigger_id is None:
            continue
        rating = outcome.event.data.get("rating") if outcome.event is not None else None
        tx.insert(
            MOVES,
            {
                "order_id": move.order_id,
                "trigger_id": move.trigger_id,
                "trigger_type": move.trigger_type,
                "from_status": move.from_status,
                "to_status": move.to_status,
                "rating": rating,
                "event_id": move.event_id,
                "at": move.at,
            },
        )


STATS_OPENAPI: dict[str, JSON] = {
    "summary": "Moves made by review triggers",
    "description": (
        "How many orders review.negative and review.positive triggers moved, in total, "
        "by trigger type, by target status and by the review's rating."
    ),
    "responses": {
        "200": {
            "description": "the counts",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "moves": {"type": "integer"},
                            "by_trigger_type": {
                                "type": "object",
                                "additionalProperties": {"type": "integer"},
                            },
                            "by_status": {
                                "type": "object",
                                "additionalProperties": {"type": "integer"},
                            },
                            "by_rating": {
                                "type": "object",
                                "additionalProperties": {"type": "integer"},
                            },
                        },
                    }
                }
            },
        }
    },
}


async def read_stats(kernel: KernelServices) -> dict[str, JSON]:
    """The counts, from the table every server process writes to."""
    columns = (MOVES.c.trigger_type, MOVES.c.to_status, MOVES.c.rating)
    query = sa.select(*columns, sa.func.count()).group_by(*columns)
    async with kernel.read() as conn:
        rows = (await conn.execute(query)).all()
    by_type = dict.fromkeys(TRIGGER_TYPES, 0)
    by_status: dict[str, int] = {}
    by_rating = {str(rating): 0 for rating in range(1, 6)}
    for trigger_type, status, rating, count in rows:
        by_type[trigger_type] = by_type.get(trigger_type, 0) + count
        by_status[status] = by_status.get(status, 0) + count
        if rating is not None:
            by_rating[str(rating)] = by_rating.get(str(rating), 0) + count
    return {
        "moves": sum(by_type.values()),
        "by_trigger_type": by_type,
        "by_status": dict(sorted(by_status.items())),
        "by_rating": by_rating,
    }


@hookimpl
def register_routes(register: Callable[[Route], None], kernel: KernelServices) -> None:
    async def stats(request: web.Request) -> web.Response:
        return json_response(await read_stats(kernel))

    register(Route("GET", STATS_PATH, stats, STATS_OPENAPI))
