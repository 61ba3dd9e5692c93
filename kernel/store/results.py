"""The rows a store connection answers a plugin's statement with: a small subset of
SQLAlchemy's ``Result`` (``first``, ``one``, ``all``, ``scalar``, ``scalars``,
``mappings``, ``rowcount``), its rows tuples that also read by column name."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from typing import Any


class NoResultFound(Exception):
    """``one()`` found no row."""


class MultipleResultsFound(Exception):
    """``one()`` found more than one row."""


class Row(tuple[Any, ...]):
    """A row: by position (``row[0]``), by name (``row.id``), or as ``row._mapping``."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()
    _index: Mapping[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        try:
            return self[self._index[name]]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def _mapping(self) -> dict[str, Any]:
        return dict(zip(self._fields, self, strict=False))

    def _asdict(self) -> dict[str, Any]:
        return self._mapping


@lru_cache(maxsize=512)
def row_class(names: tuple[str, ...]) -> type[Row]:
    """The :class:`Row` class of results with these columns."""
    index = {name: i for i, name in reversed(list(enumerate(names)))}
    return type("Row", (Row,), {"__slots__": (), "_fields": names, "_index": index})


def _one(rows: Sequence[Any]) -> Any:
    if not rows:
        raise NoResultFound("no row was found when one was required")
    if len(rows) > 1:
        raise MultipleResultsFound("more than one row was found when one was required")
    return rows[0]


class _Rows:
    """What the three result kinds share: their rows in a list."""

    def __init__(self, rows: list[Any]) -> None:
        self._rows = rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)

    def all(self) -> list[Any]:
        return list(self._rows)

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def one(self) -> Any:
        return _one(self._rows)

    def one_or_none(self) -> Any:
        return None if not self._rows else _one(self._rows)

    def fetchall(self) -> list[Any]:
        return self.all()

    def fetchone(self) -> Any:
        return self.first()


class Result(_Rows):
    """A statement's rows (all read already) and how many rows it changed."""

    def __init__(self, names: Sequence[str], rows: list[Row], rowcount: int = -1) -> None:
        super().__init__(rows)
        self._names = tuple(names)
        self.rowcount = rowcount

    def keys(self) -> list[str]:
        return list(self._names)

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        return _one(self._rows)[0]

    def scalar_one_or_none(self) -> Any:
        row = self.one_or_none()
        return None if row is None else row[0]

    def scalars(self) -> _Rows:
        return _Rows([row[0] for row in self._rows])

    def mappings(self) -> _Rows:
        return _Rows([dict(zip(self._names, row, strict=False)) for row in self._rows])
