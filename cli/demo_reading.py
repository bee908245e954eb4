"""What the demo's story should read as: each item the way the ledger's rules read it
(docs/ledger.md), judged against its first promise by the calendar day of the close in the
team's timezone, an open promise past its day as missed. The demo prints this tally, and
tests/test_demo.py holds the API's figures to it.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from cli.demo_story import Item, Story


def expected(item: Item, tz: ZoneInfo, now: datetime) -> tuple[str, int, bool]:
    """(outcome, re-promises, reopened) as the ledger should read the item's sent steps."""
    first = item.born_in.due if item.born_in else None
    dues: list[date] = [first] if first else []
    status, closed, reopened = "open", None, False
    for step in item.steps:
        if step.action in ("plan", "move"):
            dues.append(step.container.due)
        elif step.action == "due":
            dues.append(step.due)
        elif step.action in ("close", "merge"):
            status, closed = "delivered", step.at
        elif step.action == "drop":
            status, closed = "dropped", step.at
        elif step.action == "reopen":
            status, reopened = "open", True
    repromises = max(0, len(dues) - 1)
    if not dues:
        return ("unpromised" if status == "delivered" else "none"), 0, reopened
    if status == "delivered":
        slip = (closed.astimezone(tz).date() - dues[0]).days
        return ("early" if slip < 0 else "on_time" if slip == 0 else "late"), repromises, reopened
    if status == "dropped":
        return "dropped", repromises, reopened
    deadline = datetime.combine(dues[0] + timedelta(days=1), time.min, tz)
    return ("missed" if now >= deadline else "pending"), repromises, reopened


def tally(story: Story) -> dict[str, Counter]:
    """Per team: how many items of each outcome, re-promises and reopens the story holds."""
    zones = {t.name: ZoneInfo(t.timezone) for t in story.teams}
    out: dict[str, Counter] = {t.name: Counter() for t in story.teams}
    for item in story.items:
        outcome, repromises, reopened = expected(item, zones[item.team], story.now)
        out[item.team][outcome] += 1
        out[item.team]["repromised"] += bool(repromises)
        out[item.team]["reopened"] += reopened
    return out
