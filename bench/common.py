"""What the track-record benchmarks share: where the synthetic ledgers live, a config naming
their 200 teams, and the statistics printed.

The ledgers are built by bench/generate.py (see docs/benchmarks.md for the commands):
PostgreSQL databases trackrecord_bench_{10k,1m} on 127.0.0.1:5432 (trust auth) and SQLite
files /tmp/trackrecord-bench/{10k,1m}.db.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from ledger.sql_dialect import percentile
from trackrecord.config import Settings, load_config

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/trackrecord_bench_{size}"
SQLITE = "sqlite:////tmp/trackrecord-bench/{size}.db"
ADMIN_TOKEN = "bench-admin-token"


def url(engine: str, size: str) -> str:
    return (PG if engine == "postgresql" else SQLITE).format(size=size)


def settings(database_url: str, teams: int = 200) -> Settings:
    """Settings with one client owning the generated teams (all UTC, as generated)."""
    lines = ['[[clients]]\nname = "bench"\n']
    lines += [f'[[clients.teams]]\nname = "team-{i:03d}"\n' for i in range(teams)]
    path = Path(tempfile.mkdtemp()) / "bench.toml"
    path.write_text("\n".join(lines))
    return Settings(
        database_url=database_url, redis_url="redis://127.0.0.1:6379/15", config=load_config(path)
    )


def ms(seconds: list[float]) -> dict[str, float]:
    """p50 and p99 in milliseconds (linear interpolation, as every percentile here)."""
    values = [s * 1000 for s in seconds]
    return {"p50": percentile(values, 0.5), "p99": percentile(values, 0.99)}


def median(values: list[float]) -> float:
    return statistics.median(values)
