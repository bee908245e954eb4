"""Milestones (GitHub milestones, Jira fix versions and sprints): progress and the chance of
finishing on time, from the scope's rows and the team's trust score. Pure; docs/metrics.md.

The chance model is deliberately simple: each item of the scope still open before its deadline
is delivered on time independently, with the probability the team's trust score estimates. So
the chance is p ** k for k open items, and the trust score's 90% interval gives low ** k and
high ** k. A scope with a late or missed item cannot finish on time any more: its chance is 0.
Dropped and descoped items have left the scope and do not count.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from ledger.outcomes import DELIVERED, Outcome
from ledger.trust import TrustScore

_COUNTED = tuple(o.value for o in Outcome if o not in (Outcome.UNPROMISED, Outcome.LINKED))
_GONE = (Outcome.DROPPED.value, Outcome.DESCOPED.value)


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
