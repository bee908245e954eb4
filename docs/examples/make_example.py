"""Regenerate the example monthly report of docs/examples/ for a synthetic client.

    .venv/bin/python docs/examples/make_example.py

Writes a made-up year of promises for client "northwind" (teams "app" and "data") into a
throwaway SQLite ledger, builds its report for May 2026 with reports.content, and writes
report.html, report.pdf, report.md and report.json here, plus report.png (the PDF's first page,
by `pdftoppm -png -r 60 -singlefile`, from Debian's poppler-utils).
"""

from __future__ import annotations

import random
import subprocess
import sys
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from sqlalchemy import create_engine, insert  # noqa: E402

from ledger.tables import Commitment, Exclusion, Item, settle_instant  # noqa: E402
from reports.content import build_report  # noqa: E402
from reports.render import render  # noqa: E402
from trackrecord import migrate  # noqa: E402
from trackrecord.config import load_config  # noqa: E402

CONFIG = """
[[clients]]
name = "northwind"
timezone = "Europe/London"
[[clients.teams]]
name = "app"
timezone = "Europe/London"
github = ["northwind/app"]
[[clients.teams]]
name = "data"
timezone = "Europe/London"
jira = ["DATA"]
"""
MONTH, NOW = "2026-05", datetime(2026, 6, 1, 7, tzinfo=UTC)
TITLES = [
    "Export invoices as CSV", "Single sign-on with Okta", "Faster search on orders",
    "Nightly warehouse sync", "Retry failed payments", "Dark mode for the dashboard",
    "Audit log for admins", "Slack alerts for failed jobs", "Customer churn report",
    "Upgrade PostgreSQL to 16", "Bulk user import", "Two-factor login by SMS",
]  # fmt: skip


def _rows():
    """(team, title, outcome, promised, delivered, slip, small) for a year: getting better."""
    rng = random.Random(7)
    out = []
    for back in range(11, -1, -1):
        first = date(2026 - (back >= 5), (5 - back - 1) % 12 + 1, 1)
        for n in range(rng.randint(4, 8)):
            promised = first + timedelta(days=rng.randint(2, 26))
            roll = rng.random() + (11 - back) * 0.03
            outcome = "early" if roll > 0.8 else "on_time" if roll > 0.45 else "late"
            if roll < 0.15:
                outcome = "missed"
            slip = rng.randint(1, 9) if outcome == "late" else None
            delivered = (
                promised - timedelta(days=rng.randint(1, 4))
                if outcome == "early"
                else (
                    promised + timedelta(days=slip or 0) if outcome in ("on_time", "late") else None
                )
            )
            team = "app" if n % 2 else "data"
            out.append((team, rng.choice(TITLES), outcome, promised, delivered, slip, n % 3 == 0))
    may = [r for r in out if r[3].month == 5 and r[3].year == 2026]
    may[0] = ("app", "Remove the legacy v1 API", "dropped", date(2026, 5, 20), None, None, False)
    may[1] = ("data", "Rebuild the pricing model", "descoped", date(2026, 5, 28), None, None, False)
    out = [r for r in out if not (r[3].month == 5 and r[3].year == 2026)] + may
    out.append(("app", "Mobile push notifications", "pending", date(2026, 6, 12), None, None, 0))
    out.append(("data", "GDPR data export", "pending", date(2026, 6, 25), None, None, 0))
    out.append(("app", "Fix typo on the login page", "unpromised", None, date(2026, 5, 7), None, 1))
    out.append(("data", "Speed up the monthly close", "unpromised", None, date(2026, 5, 19), 0, 0))
    return out


def _write(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        for n, (team, title, outcome, promised, delivered, slip, small) in enumerate(_rows(), 1):
            source = "github" if team == "app" else "jira"
            key = f"github:northwind/app#{n}" if team == "app" else f"jira:DATA-{n}"
            noon = lambda d: datetime(d.year, d.month, d.day, 12, tzinfo=UTC)  # noqa: E731
            deadline = noon(promised) + timedelta(hours=12) if promised else None
            settled = noon(delivered) if delivered else None
            if outcome in ("missed", "dropped", "descoped"):
                settled = deadline - timedelta(days=8 if outcome != "missed" else 0)
            item = conn.execute(
                insert(Item.__table__)
                .values(key=key, source=source, source_key="x", team=team, client="northwind",
                        status="closed", title=title, links=[], updated_at=NOW,
                        opened_at=noon(promised or delivered) - timedelta(days=20))
                .returning(Item.__table__.c.id)
            ).scalar_one()  # fmt: skip
            conn.execute(
                insert(Commitment.__table__).values(
                    item_id=item, team=team, client="northwind", promised_date=promised,
                    first_promised=promised, latest_promised=promised, outcome=outcome,
                    promised_at=noon(promised) - timedelta(days=25) if promised else None,
                    deadline=deadline, settled_at=settled, delivered_at=noon(delivered)
                    if delivered else None, slip_days=slip, repromise_count=0, small=bool(small),
                    excluded=title == "Rebuild the pricing model", updated_at=NOW,
                    settle_at=settle_instant(outcome=outcome, promised_date=promised,
                                             deadline=deadline, settled_at=settled,
                                             delivered_at=noon(delivered) if delivered else None),
                )
            )  # fmt: skip
            if title == "Rebuild the pricing model":
                conn.execute(
                    insert(Exclusion.__table__).values(
                        item_id=item, reason="client paused the project", excluded_by="sam",
                        excluded_at=NOW - timedelta(days=10),
                    )
                )  # fmt: skip
    engine.dispose()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/example.db"
        migrate.upgrade(url)
        _write(url)
        (Path(tmp) / "c.toml").write_text(CONFIG)
        config = load_config(Path(tmp) / "c.toml")
        engine = create_engine(url)
        with engine.connect() as conn:
            report = build_report(conn, config, "northwind", MONTH, now=NOW)
        engine.dispose()
    for fmt in ("html", "pdf", "md", "json"):
        (HERE / f"report.{fmt}").write_bytes(render(report, fmt))
    subprocess.run(
        ["pdftoppm", "-png", "-r", "60", "-singlefile", str(HERE / "report.pdf"),
         str(HERE / "report")],
        check=True,
    )  # fmt: skip
    print(report["headline"])


if __name__ == "__main__":
    main()
