"""Milestones (GitHub milestones, Jira fix versions and sprints): progress and the chance of
finishing on time, from the scope's rows and the team's trust score. Pure; docs/metrics.md.

The chance model is deliberately simple: each item of the scope still open before its deadline
is delivered on time independently, with the probability the team's trust score estimates. So
the chance is p ** k for k open items, and the trust score's 90% interval gives low ** k and
high ** k. A scope with a late or missed item cannot finish on time any more: its chance is 0.
Dropped and descoped items have left the scope and do not count.

`team_milestones` reads the scope rows as every figure reads the ledger (ledger.reading: an
overdue pending row is a miss, whether or not the scheduler has stored it) and the team's trust
score from the settlement pass; `milestone_figures` is the arithmetic, pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, tzinfo

from sqlalchemy import Connection, select

from ledger.outcomes import DELIVERED, PROMISED, Outcome, values
from ledger.reading import C, I, promises, read_outcome
from ledger.scope_titles import titles_of
from ledger.sql_figures import NOTHING_SETTLED, settlement_pass
from ledger.trust import TrustScore, beta_reputation

_COUNTED = values(PROMISED)
_GONE = (Outcome.DROPPED.value, Outcome.DESCOPED.value)


def team_milestones(
    conn: Connection, *, team: str, now: datetime, tz: tzinfo, half_life_days: float
) -> dict:
    """`{"team", "as_of", "trust_score", "milestones"}`: the team's scopes as of `now`."""
    settled = settlement_pass(
        conn,
        owner=C.c.team,
        where=C.c.team == team,
        as_of=now,
        until=now,
        half_life_days=half_life_days,
    ).get(team, NOTHING_SETTLED)
    trust = beta_reputation(settled.w_kept, settled.w_broken)
    stmt = (
        select(I.c.scope, C.c.promised_date, read_outcome(now), C.c.excluded)
        .join(I, I.c.id == C.c.item_id)
        .where(promises(C.c.team == team), I.c.scope.is_not(None))
    )
    rows = [(scope, day, outcome, bool(ex)) for scope, day, outcome, ex in conn.execute(stmt)]
    found = milestone_figures(rows, today=now.astimezone(tz).date(), trust=trust)
    # Its name as the newest delivery showed it (None until one did): presentation only.
    titles = titles_of(conn, [m["scope"] for m in found])
    for m in found:
        m["title"] = titles.get(m["scope"])
    return {
        "team": team,
        "as_of": now.astimezone(UTC).isoformat(),
        "trust_score": trust.as_dict(),
        "milestones": found,
    }


def chance_on_time(open_items: int, broken: bool, trust: TrustScore) -> dict[str, float]:
    """{estimate, low, high}: every open item on time, each independently with the trust p."""
    if broken:
        return {"estimate": 0.0, "low": 0.0, "high": 0.0}
    return {
        "estimate": trust.estimate**open_items,
        "low": trust.low**open_items,
        "high": trust.high**open_items,
    }


def milestone_figures(
    rows: Iterable[tuple[str, date, str, bool]], *, today: date, trust: TrustScore
) -> list[dict]:
    """One entry per scope, latest due date first.

    `rows` are (scope, promised_date, outcome, excluded) with overdue pending rows already
    read as missed. The due date is the latest promised date of the items still in the scope.
    """
    by_scope: dict[str, list[tuple[date, str]]] = {}
    excluded: dict[str, int] = {}
    for scope, promised, outcome, is_excluded in rows:
        if is_excluded:
            excluded[scope] = excluded.get(scope, 0) + 1
            by_scope.setdefault(scope, [])
        else:
            by_scope.setdefault(scope, []).append((promised, outcome))
    result = []
    for scope, items in by_scope.items():
        counts = {o: 0 for o in _COUNTED}
        for _, outcome in items:
            counts[outcome] += 1
        delivered = sum(counts[o.value] for o in DELIVERED)
        open_items = counts[Outcome.PENDING.value] + counts[Outcome.MISSED.value]
        in_scope = [p for p, o in items if o not in _GONE]
        due = max(in_scope, default=None)
        progress = delivered / (delivered + open_items) if delivered + open_items else None
        broken = counts[Outcome.LATE.value] + counts[Outcome.MISSED.value] > 0
        result.append(
            {
                "scope": scope,
                "due_date": due.isoformat() if due else None,
                "days_left": (due - today).days if due else None,
                "items": len(in_scope),
                "progress": progress,
                "counts": {**counts, "excluded": excluded.get(scope, 0)},
                "open": open_items,
                "chance_on_time": chance_on_time(counts[Outcome.PENDING.value], broken, trust)
                if in_scope
                else None,
            }
        )
    result.sort(key=lambda m: (m["due_date"] or "", m["scope"]), reverse=True)
    return result
