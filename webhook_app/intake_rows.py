"""The intake's insert: one statement for one delivery or for a group of them
(webhook_app.intake_group), `INSERT … ON CONFLICT (source, delivery_id) DO NOTHING RETURNING`.

A delivery already stored (a redelivery) is the row the statement does not return: the unique
key decides races between concurrent redeliveries, and exactly one insert wins. The statement
runs in autocommit (Services.writer): committed, on PostgreSQL flushed to the WAL, before it
returns, with no BEGIN and COMMIT round trips around it; a group of rows shares that commit.

It is compiled once per engine and row count, and run on a pooled DBAPI connection with the
columns' own bind processors (JSON, dates, bytes), as SQLAlchemy runs it, without the statement
cache lookup, execution context and result objects each execute builds: a tenth of an intake
request's CPU. Failures are raised as SQLAlchemy's DBAPIError, `connection_invalidated` when
the database dropped the connection (its pool is then thrown away, as SQLAlchemy does).
"""

from __future__ import annotations

import time
import weakref

from sqlalchemy import Engine, bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, OperationalError

from trackrecord.db import SQLITE_BUSY_TIMEOUT_MS
from trackrecord.models import Delivery

_TABLE = Delivery.__table__
# Every column the insert sets; the others are left NULL. received_at is given too: its default
# is computed in Python, which the compiled statement would not do.
COLUMNS = (
    "source", "delivery_id", "event", "action", "source_key", "team", "verified_sources",
    "headers", "body", "status", "queued_at", "attempts", "received_at",
)  # fmt: skip
_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}

# The waits between tries for SQLite's write lock: short, since another process's insert holds
# it for about a millisecond.
BUSY_PAUSE, BUSY_PAUSE_MAX = 0.0005, 0.005

Key = tuple[str, str]  # (source, delivery_id)


class Statement:
    """The insert of `size` rows for one engine."""

    def __init__(self, engine: Engine, size: int):
        dialect = engine.dialect
        names = [[f"{c}_{i}" for c in COLUMNS] for i in range(size)]
        stmt = (
            _INSERTS[dialect.name](_TABLE)
            .values(
                [
                    {
                        c: bindparam(n, type_=_TABLE.c[c].type)
                        for c, n in zip(COLUMNS, row, strict=True)
                    }
                    for row in names
                ]
            )
            .on_conflict_do_nothing(index_elements=["source", "delivery_id"])
            .returning(_TABLE.c.id, _TABLE.c.source, _TABLE.c.delivery_id)
        )
        compiled = stmt.compile(dialect=dialect)
        order = list(compiled.positiontup) if compiled.positional else list(compiled.binds)
        wanted = {n for row in names for n in row}
        if set(order) != wanted:  # a column with a Python-side default, say
            raise RuntimeError(f"the deliveries insert binds {sorted(order)}, not {COLUMNS}")
        processors = {
            c: _TABLE.c[c].type.dialect_impl(dialect).bind_processor(dialect) for c in COLUMNS
        }
        # Where each bound value comes from: (row, column, its processor), in the statement's order.
        self.slots = [
            (int(n.rsplit("_", 1)[1]), c, processors[c])
            for n in order
            for c in [n.rsplit("_", 1)[0]]
        ]
        self.order = order
        self.positional = compiled.positional
        self.sql = compiled.string

    def params(self, rows: list[dict]):
        values = [p(rows[i][c]) if p else rows[i][c] for i, c, p in self.slots]
        return values if self.positional else dict(zip(self.order, values, strict=True))


class Rows:
    """Inserts for one engine, compiled on first use for each row count."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._statements: dict[int, Statement] = {}

    def insert(self, rows: list[dict]) -> dict[Key, int]:
        """Insert the rows (distinct keys); the id of each one inserted, by its key. A row whose
        key is already stored is left out of the answer."""
        try:
            return self._patiently(rows)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            # A pooled connection the database dropped (say, it restarted): the pool is thrown
            # away, and a fresh connection tries once more. There is no pool pre-ping on this
            # engine: that would cost a round trip on every request.
            return self._patiently(rows)

    def _patiently(self, rows: list[dict]) -> dict[Key, int]:
        if self.engine.dialect.name != "sqlite":
            return self._insert(rows)
        # Another process holds SQLite's write lock: wait here, in short sleeps that let this
        # process's other requests run (under gevent), as long as SQLite itself would wait.
        deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
        pause = BUSY_PAUSE
        while True:
            try:
                return self._insert(rows)
            except OperationalError as exc:
                if not _locked(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, BUSY_PAUSE_MAX)

    def _insert(self, rows: list[dict]) -> dict[Key, int]:
        size = len(rows)
        stmt = self._statements.get(size)
        if stmt is None:
            stmt = self._statements[size] = Statement(self.engine, size)
        params = stmt.params(rows)
        dialect = self.engine.dialect
        raw = cursor = None
        try:
            raw = self.engine.raw_connection()
            cursor = raw.cursor()
            cursor.execute(stmt.sql, params)
            return {(source, delivery): row_id for row_id, source, delivery in cursor.fetchall()}
        except dialect.loaded_dbapi.Error as exc:
            dropped = raw is not None and dialect.is_disconnect(exc, raw, cursor)
            if dropped:
                raw.invalidate(exc)
                self.engine.dispose()  # the pool's other connections went with it
            raise DBAPIError.instance(
                stmt.sql,
                params,
                exc,
                dialect.loaded_dbapi.Error,
                hide_parameters=True,
                connection_invalidated=dropped,
                dialect=dialect,
            ) from exc
        finally:
            if cursor is not None:
                cursor.close()
            if raw is not None:
                raw.close()  # back to the pool (an invalidated one is let go)


def _locked(exc: OperationalError) -> bool:
    return getattr(exc.orig, "sqlite_errorname", "").startswith("SQLITE_BUSY")


_ROWS: weakref.WeakKeyDictionary[Engine, Rows] = weakref.WeakKeyDictionary()


def rows_for(engine: Engine) -> Rows:
    """The engine's inserts (the intake's engine: one per process and database)."""
    found = _ROWS.get(engine)
    if found is None:
        found = _ROWS[engine] = Rows(engine)
    return found
