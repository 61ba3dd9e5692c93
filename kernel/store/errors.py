"""The store's exceptions (re-exported by :mod:`statusflow.store.statements`)."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError


class StorageConflict(Exception):
    """The transaction lost a race (a concurrent duplicate event id, a deadlock): run the
    whole group again."""


class ConstraintViolated(IntegrityError):
    """A statement broke a unique or foreign key constraint (an order id already taken).

    A SQLAlchemy ``IntegrityError``, as plugins that ran their statements on SQLAlchemy's
    connections expect (the driver's error is its ``orig``)."""


class CommitOutcomeUnknown(Exception):
    """``COMMIT`` was sent but failed (the connection broke meanwhile): the transaction
    may or may not have committed, so the request must not be said to be safe to retry
    (events with an ``id`` are, being idempotent)."""
