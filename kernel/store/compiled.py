"""SQLAlchemy Core statements compiled once per dialect, for the bare drivers.

A :class:`Compiled` is a statement's SQL text for ``sqlite3`` (``?``) or ``asyncpg``
(``$1``), its parameters in order with their types' bind processors (JSON to text,
booleans...), and its result columns' processors (text to JSON...). The kernel's own
statements (:mod:`statusflow.store.queries`) are compiled when a store starts; the
statements plugins pass to ``kernel.read()`` / ``kernel.write()`` connections are
compiled the first time their shape is seen (:class:`StatementCache`) and reused with
their new values after that, as SQLAlchemy's own statement cache does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import JSON
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import UpdateBase

Processor = Callable[[Any], Any]

CACHE_SIZE = 500
"""Statement shapes a store keeps compiled for plugins (the oldest are dropped first)."""


def _loads(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def _columns(statement: Executable) -> Sequence[Any]:
    """The statement's result columns (a SELECT's, a RETURNING's; none for ``text()``)."""
    columns = getattr(statement, "selected_columns", None)
    if columns is None:
        columns = getattr(statement, "exported_columns", None)
    return list(columns) if columns else []


def _result_names(statement: Executable) -> list[str]:
    return [str(column.key) for column in _columns(statement)]


def _result_processors(statement: Executable, dialect: Dialect) -> list[Processor | None] | None:
    """One processor (or ``None``) per result column, or ``None`` when the statement
    does not say what its columns are (``text()``)."""
    columns = _columns(statement)
    if not columns:
        return None
    processors: list[Processor | None] = []
    for column in columns:
        type_ = column.type
        if isinstance(type_, JSON):  # the drivers hand JSON over as text
            processors.append(_loads)
            continue
        processors.append(type_.dialect_impl(dialect).result_processor(dialect, None))
    return processors


class Compiled:
    """One statement compiled for one dialect (see the module docstring)."""

    __slots__ = ("_binds", "_compiled", "expanding", "names", "result", "returns_rows", "sql")

    def __init__(
        self,
        statement: Executable,
        dialect: Dialect,
        cache_key: Any = None,
        column_keys: Sequence[str] | None = None,
    ) -> None:
        assert isinstance(statement, ClauseElement)
        compiled = statement.compile(dialect=dialect, cache_key=cache_key, column_keys=column_keys)
        assert isinstance(compiled, SQLCompiler)
        if compiled.insert_prefetch or compiled.update_prefetch:
            raise ValueError(
                "column defaults computed in Python are not applied here: pass every value"
            )
        self._compiled = compiled
        self.sql = compiled.string
        self.expanding = bool(compiled.post_compile_params)
        """An ``IN`` of a list: the SQL text depends on the values (:meth:`expand`)."""
        self._binds: list[tuple[str, Any, Processor | None]] = []
        for name in compiled.positiontup or ():
            bind = compiled.binds[name]
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            self._binds.append((name, bind, process))  # name: as rendered (a key's)
        self.result = _result_processors(statement, dialect)
        """Processors of the result columns, in order (``None``: leave the values be)."""
        self.names = _result_names(statement)
        """The result columns' names (empty: the driver's names)."""
        self.returns_rows = not isinstance(statement, UpdateBase) or bool(self.names)
        """Whether it answers rows (an INSERT, UPDATE or DELETE only with RETURNING)."""

    def arguments(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        """The driver's positional arguments for ``params`` (by parameter name); a
        parameter not given takes the value written into the statement."""
        out = []
        for key, bind, process in self._binds:
            value = params.get(key, bind.effective_value)
            out.append(process(value) if process is not None and value is not None else value)
        return tuple(out)

    def expand(
        self, params: Mapping[str, Any] | None, extracted: Sequence[Any] | None
    ) -> tuple[str, tuple[Any, ...]]:
        """The SQL text and arguments for a statement of this shape whose own values are
        ``extracted`` (its cache key's parameters), ``params`` overriding them."""
        compiled = self._compiled
        values = compiled.construct_params(params, extracted_parameters=extracted)
        if not self.expanding:
            return self.sql, self.arguments(values)
        state = compiled.construct_expanded_state(values)
        processors = state.processors
        out = []
        for name in state.positiontup or ():
            value = state.parameters[name]
            process = processors.get(name)
            out.append(process(value) if process is not None and value is not None else value)
        return state.statement, tuple(out)

    def decode(self, row: Sequence[Any]) -> tuple[Any, ...]:
        """A driver's row with the result processors applied."""
        processors = self.result
        if processors is None or len(processors) != len(row):
            return tuple(row)
        return tuple(
            p(v) if p is not None and v is not None else v
            for p, v in zip(processors, row, strict=True)
        )


class StatementCache:
    """Compiled statements of one dialect: the kernel's by identity, compiled up front,
    and any other by its SQLAlchemy cache key (its shape, values left out)."""

    def __init__(self, dialect: Dialect, prepared: Sequence[Executable] = ()) -> None:
        self.dialect = dialect
        self._fixed: dict[int, tuple[Executable, Compiled]] = {
            id(statement): (statement, Compiled(statement, dialect)) for statement in prepared
        }
        self._shapes: dict[Any, Compiled] = {}

    def fixed(self, statement: Executable) -> Compiled:
        """A statement compiled up front (or now, and kept: the kernel's own)."""
        found = self._fixed.get(id(statement))
        if found is None or found[0] is not statement:
            found = self._fixed[id(statement)] = (statement, Compiled(statement, self.dialect))
        return found[1]

    def sql_for(
        self, statement: Executable, params: Mapping[str, Any] | None
    ) -> tuple[Compiled, str, tuple[Any, ...]]:
        """``(compiled, sql, arguments)`` of any statement, values included; an INSERT
        or UPDATE given ``params`` writes the columns they name (as with SQLAlchemy)."""
        found = self._fixed.get(id(statement))
        if found is not None and found[0] is statement:
            compiled = found[1]
            if not compiled.expanding:
                return compiled, compiled.sql, compiled.arguments(params or {})
            return (compiled, *compiled.expand(params, None))
        assert isinstance(statement, ClauseElement)
        columns = tuple(params) if params and isinstance(statement, UpdateBase) else None
        key = statement._generate_cache_key()  # SQLAlchemy's key of a statement's shape
        if key is None:  # a construct that cannot be cached: compiled each time
            compiled = Compiled(statement, self.dialect, None, columns)
            return (compiled, *compiled.expand(params, None))
        compiled = self._shapes.get((key.key, columns))  # type: ignore[assignment]
        if compiled is None:
            if len(self._shapes) >= CACHE_SIZE:
                del self._shapes[next(iter(self._shapes))]
            compiled = Compiled(statement, self.dialect, key, columns)
            self._shapes[(key.key, columns)] = compiled
        return (compiled, *compiled.expand(params, key.bindparams))
