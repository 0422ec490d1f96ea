"""Core statements run straight on the SQLite writer's sqlite3 connection, with SQLAlchemy's own SQL and type conversions.

SQLAlchemy's execution layer costs several times what sqlite3 needs to run a
one-row statement. The SQLite writer runs the statements of every checkpoint
(the operation's UPDATE and the event's INSERT) through this instead: the SQL
text and each parameter's conversion (JSON, DATETIME) come from SQLAlchemy,
compiled once per statement and set of columns, so both paths write the same
bytes. A DATETIME converter remembers its last value and text: a write
stamps one `now` on several columns and rows (the operation, its events,
its outbox entry), which are formatted once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

Converter = Callable[[Any], Any] | None


class PreparedStatements:
    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._compiled: dict[tuple[ClauseElement, tuple[str, ...]], tuple[str, list[tuple[str, Converter]]]] = {}

    def execute(self, connection: sqlite3.Connection, statement: ClauseElement, params: Mapping[str, Any]) -> sqlite3.Cursor:
        sql, binds = self._prepared(statement, tuple(params))
        return connection.execute(sql, _bound(binds, params))

    def execute_many(self, connection: sqlite3.Connection, statement: ClauseElement, rows: Sequence[Mapping[str, Any]]) -> None:
        if rows:
            sql, binds = self._prepared(statement, tuple(rows[0]))
            connection.executemany(sql, [_bound(binds, params) for params in rows])

    def _prepared(self, statement: ClauseElement, keys: tuple[str, ...]) -> tuple[str, list[tuple[str, Converter]]]:
        compiled = self._compiled.get((statement, keys))
        if compiled is None:
            compiled = self._compiled[(statement, keys)] = self._compile(statement, keys)
        return compiled

    def _compile(self, statement: ClauseElement, keys: tuple[str, ...]) -> tuple[str, list[tuple[str, Converter]]]:
        # A statement's compiler for a SQL dialect: compile() is typed as returning the base Compiled.
        compiled = cast(SQLCompiler, statement.compile(dialect=self.dialect, column_keys=list(keys)))
        binds: list[tuple[str, Converter]] = []
        for name in compiled.positiontup or ():
            kind = compiled.binds[name].type.dialect_impl(self.dialect)
            convert = kind.bind_processor(self.dialect)
            binds.append((name, _last_one(convert) if convert is not None and isinstance(kind, DateTime) else convert))
        return compiled.string, binds


def _last_one(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`convert` that reuses its last text for the same (immutable) datetime object; only the writer thread calls it."""
    last: list[Any] = [None, None]

    def converted(value: Any) -> Any:
        if value is not last[0]:
            last[0], last[1] = value, convert(value)
        return last[1]

    return converted


def _bound(binds: list[tuple[str, Converter]], params: Mapping[str, Any]) -> list[Any]:
    return [params[name] if convert is None else convert(params[name]) for name, convert in binds]
