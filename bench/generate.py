"""A synthetic ledger for the benchmarks: N commitments, 200 teams, 24 months, bulk-loaded.

    .venv/bin/python -m bench.generate URL [--n 1000000] [--teams 200] [--focus-rows K]

URL is a SQLite file (sqlite:////tmp/...) or PostgreSQL (postgresql+psycopg://...); the database
is created (PostgreSQL) or replaced (SQLite) and migrated, then filled: PostgreSQL with COPY
(psycopg's cursor.copy), SQLite with executemany in transactions of 100,000 rows.

Each team's rows come from its own seeded random stream, so team-000 is the same in every
ledger built with the same --focus-rows: that is how bench_record compares one team's cost in
a small and a large ledger ("scale, not size"). Without --focus-rows every team gets N/teams.

The mix (see OUTCOMES) is a team that keeps most promises: about 60% kept, 16% late, 5% missed,
5% dropped, 5% descoped, 3% unpromised deliveries; 1% of rows excluded by hand; promises due
after AS_OF are pending (a third of them already delivered early), and 1% of overdue rows are
still pending in the ledger (the figures must read them as misses).
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from ledger.tables import settle_instant
from trackrecord import migrate

START = date(2023, 1, 1)
MONTHS = 24
AS_OF = datetime(2024, 12, 20, tzinfo=UTC)  # 11 days before the last promised day
OUTCOMES = (  # (outcome, weight) of a promise whose deadline has passed
    ("early", 24),
    ("on_time", 37),
    ("late", 17),
    ("missed", 5),
    ("dropped", 5),
    ("descoped", 5),
    ("unpromised", 3),
    ("pending", 1),  # overdue, not yet noticed by the worker
)
ITEM_COLS = [
    "id",
    "key",
    "source",
    "source_key",
    "team",
    "client",
    "status",
    "opened_at",
    "first_response_seconds",
    "links",
    "updated_at",
]
COMMITMENT_COLS = [
    "id",
    "item_id",
    "team",
    "client",
    "promised_date",
    "first_promised",
    "latest_promised",
    "promised_at",
    "deadline",
    "outcome",
    "settled_at",
    "delivered_at",
    "settle_at",
    "slip_days",
    "repromise_count",
    "small",
    "excluded",
    "updated_at",
]
_DAY = timedelta(days=1)


def team_name(index: int) -> str:
    return f"team-{index:03d}"


def team_rows(index: int, count: int, seed: int = 0):
    """(item, commitment) value tuples of one team, deterministic for (index, count, seed)."""
    rng = random.Random(seed * 100_003 + index)
    team, days = team_name(index), (AS_OF.date() - START).days + 11
    names, weights = zip(*OUTCOMES, strict=True)
    for n in range(count):
        promised = START + timedelta(days=rng.randrange(days))
        deadline = datetime.combine(promised + _DAY, datetime.min.time(), UTC)
        made = min(deadline - timedelta(days=rng.uniform(2, 40)), AS_OF - timedelta(days=1))
        if deadline > AS_OF:
            outcome = "early" if rng.random() < 0.33 else "pending"
        else:
            outcome = rng.choices(names, weights)[0]
        settled = delivered = slip = None
        if outcome == "early":
            delivered = made + (min(deadline, AS_OF) - made) * rng.uniform(0.3, 0.95)
            slip = (delivered.date() - promised).days
            outcome = "early" if slip < 0 else "on_time"
        elif outcome == "on_time":
            delivered, slip = deadline - timedelta(hours=rng.uniform(1, 23)), 0
        elif outcome == "late":
            slip = min(1 + int(rng.expovariate(1 / 4)), 60)
            delivered = deadline + timedelta(days=slip - 1, hours=rng.uniform(1, 23))
            if delivered >= AS_OF:  # not delivered yet: a miss so far
                outcome, delivered = "missed", None
        if outcome == "missed":
            settled, slip = deadline, (AS_OF.date() - promised).days
        elif outcome in ("dropped", "descoped"):
            settled = made + (deadline - made) * rng.uniform(0.1, 0.99)
        elif outcome == "unpromised":
            delivered, promised, deadline = made, None, None
        settled = settled or delivered
        excluded = rng.random() < 0.01
        small = rng.random() < 0.3
        opened = made - timedelta(hours=rng.uniform(1, 200))
        response = rng.expovariate(1 / 8) * 3600 if rng.random() < 0.5 else None
        key = f"jira:{team.upper()}-{n}"
        item = [key, "jira", team.upper(), team, "bench", "open", opened, response, "[]", AS_OF]
        row = [team, "bench", promised, promised, promised, made, deadline, outcome, settled]
        settle_at = settle_instant(
            outcome=outcome,
            promised_date=promised,
            deadline=deadline,
            settled_at=settled,
            delivered_at=delivered,
        )
        row += [delivered, settle_at, slip, 0, small, excluded, AS_OF]
        yield item, row


def all_rows(n: int, teams: int, focus_rows: int | None, seed: int):
    counts = [n // teams] * teams
    if focus_rows is not None:
        counts[0] = focus_rows
        counts[1:] = [(n - focus_rows) // (teams - 1)] * (teams - 1)
    next_id = 1
    for index, count in enumerate(counts):
        for item, row in team_rows(index, count, seed):
            yield [next_id, *item], [next_id, next_id, *row]
            next_id += 1


def _sqlite_value(v):
    if isinstance(v, datetime):  # SQLAlchemy's SQLite DateTime format, naive UTC
        return v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return v.isoformat() if isinstance(v, date) else v


def _insert_sql(table: str, columns: list[str]) -> str:
    return f"INSERT INTO {table} ({','.join(columns)}) VALUES ({','.join('?' * len(columns))})"


def load_sqlite(path: str, rows) -> None:
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    item_sql = _insert_sql("items", ITEM_COLS)
    row_sql = _insert_sql("commitments", COMMITMENT_COLS)
    batch: list = []
    for item, row in rows:
        batch.append(([_sqlite_value(v) for v in item], [_sqlite_value(v) for v in row]))
        if len(batch) == 100_000:
            _sqlite_flush(con, item_sql, row_sql, batch)
    _sqlite_flush(con, item_sql, row_sql, batch)
    con.execute("ANALYZE")
    con.close()


def _sqlite_flush(con, item_sql, row_sql, batch) -> None:
    with con:
        con.executemany(item_sql, [b[0] for b in batch])
        con.executemany(row_sql, [b[1] for b in batch])
    batch.clear()


def load_postgres(dsn: str, make_rows) -> None:
    """COPY items, then commitments (their foreign key needs the items). The rows are generated
    twice rather than held: they are deterministic, and a million of them weigh gigabytes."""
    with psycopg.connect(dsn) as con, con.cursor() as cur:
        with cur.copy(f"COPY items ({','.join(ITEM_COLS)}) FROM STDIN") as copy:
            for item, _ in make_rows():
                copy.write_row(item)
        with cur.copy(f"COPY commitments ({','.join(COMMITMENT_COLS)}) FROM STDIN") as copy:
            for _, row in make_rows():
                copy.write_row(row)
        for table in ("items", "commitments"):
            cur.execute(f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))")
    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute("VACUUM ANALYZE items")
        con.execute("VACUUM ANALYZE commitments")


def generate(url: str, *, n: int, teams: int = 200, focus_rows=None, seed: int = 0) -> None:
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(u.database + suffix).unlink(missing_ok=True)
    else:
        admin = u.set(drivername="postgresql", database="postgres").render_as_string(False)
        with psycopg.connect(admin, autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{u.database}"')
            con.execute(f'CREATE DATABASE "{u.database}"')
    migrate.upgrade(url)

    def make_rows():
        return all_rows(n, teams, focus_rows, seed)

    if u.get_backend_name() == "sqlite":
        load_sqlite(u.database, make_rows())
    else:
        load_postgres(u.set(drivername="postgresql").render_as_string(False), make_rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--teams", type=int, default=200)
    parser.add_argument("--focus-rows", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    generate(args.url, n=args.n, teams=args.teams, focus_rows=args.focus_rows, seed=args.seed)
    print(f"{args.url}: {args.n} commitments in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
