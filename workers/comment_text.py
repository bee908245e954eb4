"""The words of a delivery comment: the outcome against the promise, the milestone's progress,
the team's record of the last 90 days, a link, and the hidden marker that finds the comment
again. Rendered from a Jinja2 template a team can replace (`comment_template`).
"""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy import select

from ledger import codec, milestones, scope_titles
from ledger import record as records
from ledger.postbacks import Postback
from ledger.record import day_words
from ledger.tables import Commitment, Item

TEMPLATES = Path(__file__).parent / "templates"
PUBLIC_URL_ENV = "TRACKRECORD_PUBLIC_URL"


def marker_token(postback_id: int) -> str:
    return f"trackrecord:postback:{postback_id}"


def marker(platform: str, postback_id: int) -> str:
    token = marker_token(postback_id)
    # GitHub hides an HTML comment; Jira's wiki markup has none, so a small grey line.
    return f"<!-- {token} -->" if platform == "github" else f"{{color:#999999}}~{token}~{{color}}"


def _day(day: date | None, today: date) -> str:
    return "?" if day is None else day_words(day, today)


def days_words(n: int) -> str:
    return f"{n} day" if n == 1 else f"{n} days"


def outcome_line(
    outcome: str, promised: date | None, closed: date | None, today: date, title: str | None = None
) -> str:
    """The comment's first line: the outcome against the promise, and what it was promised for
    (the milestone, fix version or sprint) when its name is known."""
    due, done = _day(promised, today), _day(closed, today)
    when = f"promised for {title}, due {due}" if title else f"due {due}"
    if outcome in ("early", "on_time", "late") and promised and closed:
        gap = (closed - promised).days
        if gap < 0:
            return f"Delivered {days_words(-gap)} early: {when}, closed {done}"
        if gap == 0:
            return f"Delivered on time: {when}, closed {done}"
        return f"Delivered {days_words(gap)} late: {when}, closed {done}"
    if outcome == "dropped":
        return f"Dropped: {when}, closed on {done} without being delivered"
    if outcome == "missed":
        return f"Missed: {when}, still open"
    return f"Settled: {outcome}"


def percent_words(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0%}"


def estimate_words(score: dict) -> str:
    """An estimate with its interval, as the comment and the summary both say it."""
    low, high = percent_words(score["low"]), percent_words(score["high"])
    return f"{percent_words(score['estimate'])} (likely between {low} and {high})"


def render(session, row: Postback, team, now: datetime) -> str:
    """The comment: the outcome against the promise, the milestone's progress, the team's
    record of the last 90 days, a link when TRACKRECORD_PUBLIC_URL is set, the marker."""
    tz = ZoneInfo(team.timezone)
    today = now.astimezone(tz).date()
    item = session.get(Item, row.item_id)
    c = session.scalar(select(Commitment).where(Commitment.item_id == row.item_id))
    outcome = row.kind.split(":")[1]
    closed_at = codec.utc(c.delivered_at or c.settled_at or item.closed_at) if c else None
    closed = closed_at.astimezone(tz).date() if closed_at and outcome != "missed" else None
    conn = session.connection()
    title = scope_titles.titles_of(conn, [item.scope]).get(item.scope)
    milestone = None
    if item.scope:
        found = milestones.team_milestones(
            conn, team=team.name, now=now, tz=tz, half_life_days=team.trust_half_life_days
        )
        scope = next((m for m in found["milestones"] if m["scope"] == item.scope), None)
        if scope and scope["items"]:
            delivered = scope["items"] - scope["open"]
            due = date.fromisoformat(scope["due_date"]) if scope["due_date"] else None
            milestone = (
                f"Milestone: {delivered} of {scope['items']} done, {scope['open']} still open"
                + (f", due {_day(due, today)}" if due else "")
            )
    figures = records.record(
        conn,
        teams=[team.name],
        period_from=today - timedelta(days=records.BADGE_DAYS - 1),
        period_to=today,
        now=now,
        tz=tz,
        half_life_days=team.trust_half_life_days,
    )
    trust = figures["trust_score"]
    record_words = (
        f"Team record, last 90 days: {figures['summary']} · "
        f"current streak {figures['streak_current']} kept · "
        f"trust score {estimate_words(trust)}"
    )
    public = os.environ.get(PUBLIC_URL_ENV, "").rstrip("/")
    link = f"Track record: {public}/badges/{team.name}.svg" if public else None
    template = _environment(team.comment_template)
    platform = row.item_key.partition(":")[0]
    text = template.render(
        outcome=outcome_line(outcome, c.promised_date if c else None, closed, today, title),
        milestone=milestone,
        record=record_words,
        link=link,
        marker=marker(platform, row.id),
        outcome_name=outcome,
        team=team.name,
        item=row.item_key,
        figures=figures,
    ).strip()
    token = marker(platform, row.id)
    # The marker is what finds an earlier post again: a template that leaves it out gets it.
    return (text if token in text else f"{text}\n\n{token}") + "\n"


def _environment(path: str | None):
    folder, name = (TEMPLATES, "delivery_comment.j2")
    if path:
        folder, name = Path(path).parent, Path(path).name
    env = Environment(
        loader=FileSystemLoader(str(folder)),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return env.get_template(name)
