"""What the pages show, gathered from the ledger's own functions: the record (`ledger.record`),
milestones (`ledger.milestones`), the ledger's rows (`ledger.listing`) and exclusions
(`ledger.exclusions`). No figure is computed here; this module picks, orders and links.

The pages' period is the last 12 calendar months, this one included, in the team's timezone:
the same window as the record's 12-month series, so the headline and the chart agree.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from urllib.parse import quote
from zoneinfo import ZoneInfo

from ledger import exclusions, listing, record
from ledger.milestones import team_milestones
from ledger.outcomes import BROKEN, COUNT_FIELD, DELIVERED, KEPT, Outcome
from ledger.reading import month_starts
from webhook_app.services import services

MONTHS = 12
RECENT = 15  # deliveries and misses listed on a team page
DEFAULT_GITHUB_API = "https://api.github.com"


def period(tz: ZoneInfo) -> tuple[date, date]:
    today = datetime.now(UTC).astimezone(tz).date()
    return month_starts(today, MONTHS)[0], today


def kept(rec: dict) -> int:
    """How many due promises were kept, by the outcome groups' one definition."""
    return sum(rec[COUNT_FIELD[o]] for o in KEPT)


def team_summary(conn, team) -> dict:
    """A team's record over the pages' period (the overview's row, the team page's header)."""
    period_from, period_to = period(ZoneInfo(team.timezone))
    rec = record.team_record(conn, team, period_from=period_from, period_to=period_to)
    for month in rec["months"]:
        month["kept"] = kept(month)
    # A team with nothing promised in the period and nothing ever settled: its streak (0) and
    # trust score (the prior, 50%) say nothing yet, and the pages say so instead of them.
    new = not any(rec[f] for f in ("commitments_due", "pending", "descoped", "streak_longest"))
    return {"name": team.name, "record": rec, "kept": kept(rec), "new": new}


def open_milestones(conn, team) -> list[dict]:
    """Scopes still running: a promise in them still pending, or their due date ahead. A past
    scope whose open items are all missed is over; its misses are listed with the others."""
    found = team_milestones(
        conn,
        team=team.name,
        now=datetime.now(UTC),
        tz=ZoneInfo(team.timezone),
        half_life_days=team.trust_half_life_days,
    )["milestones"]
    return [
        m
        for m in found
        if m["counts"]["pending"] or (m["days_left"] is not None and m["days_left"] >= 0)
    ]


def recent_outcomes(conn, team) -> tuple[list[dict], list[dict]]:
    """(deliveries, misses) of the period, latest promised date first, RECENT of each at most.
    Read from the end of the ledger's listing (it pages oldest promise first)."""
    period_from, period_to = period(ZoneInfo(team.timezone))
    now = datetime.now(UTC)
    args = dict(team=team.name, period_from=period_from, period_to=period_to, as_of=now)
    per_page = 200
    total, rows = listing.commitments_page(conn, page=1, per_page=per_page, **args)
    last = max(1, -(-total // per_page))
    if last > 1:
        rows = listing.commitments_page(conn, page=last, per_page=per_page, **args)[1]
        if len(rows) < 2 * RECENT:
            earlier = listing.commitments_page(conn, page=last - 1, per_page=per_page, **args)
            rows = earlier[1] + rows
    rows.reverse()
    delivered = {o.value for o in DELIVERED}
    missed = {o.value for o in BROKEN - DELIVERED}
    for row in rows:
        row["url"] = item_url(row["item"])
    deliveries = [r for r in rows if r["outcome"] in delivered][:RECENT]
    misses = [r for r in rows if r["outcome"] in missed][:RECENT]
    return deliveries, misses


def team_exclusions(team) -> list[dict]:
    with services().sessions() as session:
        return [
            {
                "item": item.key,
                "title": item.title,
                "url": item_url(item.key),
                "reason": ex.reason,
                "by": ex.excluded_by,
                "at": ex.excluded_at,
                "undone_at": ex.undone_at,
                "undone_by": ex.undone_by,
                "undo_reason": ex.undo_reason,
            }
            for ex, item in reversed(exclusions.listing(session, team.name))
        ]


def item_url(key: str) -> str | None:
    """The item on GitHub or Jira. The web address follows the API address this service
    reads (GitHub Enterprise's `https://host/api/v3` is `https://host`); a Jira item links only
    when JIRA_URL is set. GitHub sends /issues/N of a pull request on to /pull/N."""
    kind, _, rest = key.partition(":")
    if kind == "github" and "#" in rest:
        repo, _, number = rest.partition("#")
        api = (os.environ.get("GITHUB_API_URL") or DEFAULT_GITHUB_API).rstrip("/")
        web = "https://github.com" if api == DEFAULT_GITHUB_API else api.removesuffix("/api/v3")
        return f"{web}/{repo}/issues/{number}"
    if kind == "jira" and (jira := (os.environ.get("JIRA_URL") or "").rstrip("/")):
        return f"{jira}/browse/{rest}"
    return None


def scope_label(scope: str) -> str:
    """A scope key without a known title, as a person reads it:
    'github:acme/app/milestone/3' -> 'acme/app milestone 3', 'jira:sprint/5' -> 'sprint 5'."""
    kind, _, rest = scope.partition(":")
    if kind == "github":
        return rest.replace("/milestone/", " milestone ")
    return (rest or scope).replace("/", " ")


def item_label(key: str) -> str:
    """'github:acme/app#12' -> 'acme/app#12'; 'jira:PLAT-7' -> 'PLAT-7'."""
    return key.partition(":")[2] or key


OUTCOME_WORDS = {
    Outcome.EARLY.value: "early",
    Outcome.ON_TIME.value: "on time",
    Outcome.LATE.value: "late",
    Outcome.MISSED.value: "missed",
    Outcome.DROPPED.value: "dropped",
}


def report_months(client: str) -> list[dict]:
    """The client's finished months, newest first, each with its report's links
    (`GET /reports/<client>/<YYYY-MM>.<fmt>`, issue 10: built on first request). Empty while
    the reports module is not installed: this is the pages' one hook for it."""
    try:
        from reports.render import FORMATS
    except ImportError:
        return []
    tz = ZoneInfo(services().settings.config.client(client).timezone)
    starts = month_starts(datetime.now(UTC).astimezone(tz).date(), MONTHS + 1)[:-1]
    shown = [f for f in ("html", "pdf", "md", "json") if f in FORMATS]
    return [
        {
            "month": f"{start:%Y-%m}",
            "start": start,
            "links": {fmt: f"/reports/{quote(client)}/{start:%Y-%m}.{fmt}" for fmt in shown},
        }
        for start in reversed(starts)
    ]
