"""Core statements run straight on the SQLite writer's sqlite3 connection, with SQLAlchemy's own SQL and type conversions.

SQLAlchemy's execution layer costs several times what sqlite3 needs to run a
one-row statement. The SQLite writer runs the statements of every checkpoint
(the operation's UPDATE and the event's INSERT) through this instead: the SQL
text and each parameter's conversion (JSON, DATETIME) come from SQLAlchemy,
compiled once per statement and set of columns, so both paths write the same
bytes. The DATETIME converters share the texts of the last few values: a
write stamps one `now` on several columns and rows (the operation's
created_at and updated_at, its events, its outbox entry), between other
times (the lease's end), and each is formatted once.
"""

from __future__ import annotations

import operator
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

Binder = Callable[[Mapping[str, Any]], list[Any]]  # a statement's parameters, in order, from a mapping
RECENT_DATETIMES = 8


class PreparedStatements:
    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._compiled: dict[tuple[ClauseElement, tuple[str, ...]], tuple[str, Binder]] = {}
        self._recent_datetimes: dict[str, dict[int, tuple[Any, Any]]] = {}  # storage format -> id -> (datetime, text)

    def execute(self, connection: sqlite3.Connection, statement: ClauseElement, params: Mapping[str, Any]) -> sqlite3.Cursor:
        sql, bound = self._prepared(statement, tuple(params))
        return connection.execute(sql, bound(params))

    def execute_many(self, connection: sqlite3.Connection, statement: ClauseElement, rows: Sequence[Mapping[str, Any]]) -> None:
        if rows:
            sql, bound = self._prepared(statement, tuple(rows[0]))
            connection.executemany(sql, [bound(params) for params in rows])

    def _prepared(self, statement: ClauseElement, keys: tuple[str, ...]) -> tuple[str, Binder]:
        compiled = self._compiled.get((statement, keys))
        if compiled is None:
            compiled = self._compiled[(statement, keys)] = self._compile(statement, keys)
        return compiled

    def _compile(self, statement: ClauseElement, keys: tuple[str, ...]) -> tuple[str, Binder]:
        # A statement's compiler for a SQL dialect: compile() is typed as returning the base Compiled.
        compiled = cast(SQLCompiler, statement.compile(dialect=self.dialect, column_keys=list(keys)))
        names = list(compiled.positiontup or ())
        converters: list[tuple[int, Callable[[Any], Any]]] = []
        for index, name in enumerate(names):
            kind = compiled.binds[name].type.dialect_impl(self.dialect)
            process = kind.bind_processor(self.dialect)
            if process is not None:
                convert: Callable[[Any], Any] = process
                if isinstance(kind, DateTime):
                    storage_format = str(getattr(kind, "_storage_format", ""))
                    convert = _recent(process, self._recent_datetimes.setdefault(storage_format, {}))
                converters.append((index, convert))
        return compiled.string, _binder(names, converters)


def _recent(convert: Callable[[Any], Any], recent: dict[int, tuple[Any, Any]]) -> Callable[[Any], Any]:
    """`convert` that reuses the text made for the same (immutable) datetime object among the last RECENT_DATETIMES
    (`recent`, shared by the converters of one storage format); only the writer thread calls it. A checkpoint's UPDATE
    alternates `now` and the lease's end, so keeping only the last one formatted `now` three times per write."""

    def converted(value: Any) -> Any:
        if value is None:
            return convert(value)
        made = recent.get(id(value))
        if made is not None and made[0] is value:
            return made[1]
        if len(recent) >= RECENT_DATETIMES:
            recent.clear()
        text = convert(value)
        recent[id(value)] = (value, text)  # the value is held: its id is not reused while it is here
        return text

    return converted


def _binder(names: list[str], converters: list[tuple[int, Callable[[Any], Any]]]) -> Binder:
    """The statement's parameters in order, from a mapping, each converted by its column's type where it has a
    converter: the values are taken by one operator.itemgetter (C) rather than a comprehension over ~50 columns
    (an operation's INSERT), and only the converted ones are touched again."""
    if not names:
        return lambda _params: []
    take = operator.itemgetter(*names)
    single = len(names) == 1

    def bound(params: Mapping[str, Any]) -> list[Any]:
        values = [take(params)] if single else list(take(params))
        for index, convert in converters:
            values[index] = convert(values[index])
        return values

    return bound
