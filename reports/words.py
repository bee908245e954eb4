"""The report's words: plain sentences a non-engineer reads in two minutes ("3 of 8 promises
kept on time"), late, missed and dropped said plainly. Dates and the record's own headline come
from `ledger.record` (`day_words`, `headline`), so the report says them as the API, the CLI and
the badge do.
"""

from __future__ import annotations

from datetime import date, datetime, tzinfo

from ledger.record import day_words

DEFINITIONS_SOURCE = "docs/metrics.md"
# One short line per figure; docs/metrics.md defines each in full with a worked example.
DEFINITIONS = {
    "commitments_due": "Promises whose promised date fell in the month, excluding those "
    "withdrawn before their date (descoped) and those still open before their date.",
    "on_time_rate": "Promises kept on or before their first promised date, out of those due. "
    "Late, missed and dropped ones count against it.",
    "say_do_ratio": "Promises delivered at all (on time or late), out of those due.",
    "slip_days_median": "How many days late the late deliveries were (the middle value).",
    "streak_current": "Promises kept in a row, in the order they were settled, up to the "
    "month's end; the longest such run ever is streak_longest.",
    "trust_score": "How likely the next promise is to be kept, from every promise so far, "
    "recent ones weighing more; with a 90% range.",
    "first_win_days": "Days from the first promise ever made to the first one kept.",
    "small_wins": "Small items (by size label or story points) delivered in the month.",
    "unpromised_deliveries": "Work delivered that nobody had asked for by a date.",
    "excluded": "Promises a lead took out of the figures, each with its stated reason.",
}


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def kept_sentence(rec: dict) -> str:
    """'3 of 8 promises kept on time (38%)', or what stands when nothing was due."""
    due = rec["commitments_due"]
    if not due:
        return rec["summary"][:1].upper() + rec["summary"][1:]
    kept = rec["delivered_early"] + rec["delivered_on_time"]
    noun = "promise" if due == 1 else "promises"
    return f"{kept} of {due} {noun} kept on time ({pct(rec['on_time_rate'])})"


def lead_sentence(this: dict, previous: dict) -> str:
    """The month in one sentence, against the month before."""
    head = kept_sentence(this)
    if this["on_time_rate"] is None or previous["on_time_rate"] is None:
        return f"{head}."
    before = previous["on_time_rate"]
    if round(this["on_time_rate"], 2) == round(before, 2):
        return f"{head}, the same as the month before."
    gone = "up from" if this["on_time_rate"] > before else "down from"
    return f"{head}, {gone} {pct(before)} the month before."


def count_words(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def times(n: int) -> str:
    return {1: "once", 2: "twice"}.get(n, f"{n} times")


def _day(value: str | None, today: date, tz: tzinfo) -> str | None:
    """An ISO date, or an ISO instant read in `tz`, as every surface writes a day."""
    if value is None:
        return None
    if len(value) == 10:
        return day_words(date.fromisoformat(value), today)
    return day_words(datetime.fromisoformat(value).astimezone(tz).date(), today)


def what_happened(row: dict, today: date, tz: tzinfo) -> str:
    """What became of one promise, in a sentence: its outcome, slip, re-promise, reopening and
    exclusion, stated plainly. `row` is a `reports.items.commitments` row; `today` gives
    the year dates are written without, `tz` the timezone instants are read in."""
    due = _day(row["first_promised"] or row["promised_date"], today, tz)
    when = _day(row["delivered_at"] or row["settled_at"], today, tz)
    outcome = row["outcome"]
    if outcome == "late":
        slip = row["slip_days"]
        late = f"{count_words(slip, 'day')} late" if slip is not None else "late"
        said = f"Delivered {late}" + (f", on {when}" if when else "") + f" (due {due})"
    elif outcome == "missed":
        said = f"Missed: due {due}, not delivered by then"
    elif outcome == "dropped":
        said = "Dropped" + (f" on {when}" if when else "") + f": it was due {due}"
    elif outcome == "descoped":
        said = "Descoped (withdrawn before its date)" + (f" on {when}" if when else "")
    elif outcome in ("early", "on_time"):
        said = (
            ("Delivered early" if outcome == "early" else "Delivered on time")
            + (f", on {when}" if when else "")
            + f" (due {due})"
        )
    else:
        said = f"Open, due {due}"
    parts = [said]
    first, latest = row["first_promised"], row["latest_promised"]
    if row["repromise_count"] and first and latest and first != latest:
        parts.append(f"re-promised from {_day(first, today, tz)} to {_day(latest, today, tz)}")
    if row.get("reopened"):
        parts.append(f"reopened {times(row['reopened'])}")
    if row["excluded"]:
        why = row["exclusion"] or {}
        parts.append(
            "excluded from the figures"
            + (f": {why['reason']}" if why.get("reason") else "")
            + (f" (by {why['by']})" if why.get("by") else "")
        )
    return "; ".join(parts) + "."
