"""The words of a living milestone summary: delivered / open / late / dropped counts, days
left and the chance of finishing on time, from ledger.milestones' figures (never recomputed
here), and "Final report" once the milestone is closed or its date has passed.
"""

from __future__ import annotations

from datetime import date

from connectors.summary_targets import END, START
from ledger.record import day_words
from workers.comment_text import days_words, estimate_words


def marker_token(scope: str) -> str:
    return f"trackrecord:summary:{scope}"


def marker(platform: str, scope: str) -> str:
    token = marker_token(scope)
    # GitHub hides an HTML comment; Jira's wiki markup has none, so a small grey line.
    return f"<!-- {token} -->" if platform == "github" else f"{{color:#999999}}~{token}~{{color}}"


def is_final(figures: dict, closed: bool) -> bool:
    return closed or (figures["days_left"] is not None and figures["days_left"] < 0)


def lines(figures: dict, *, title: str | None, today: date, closed: bool) -> list[str]:
    """The summary's lines (no marker). `figures` is one entry of
    `ledger.milestones.team_milestones(...)["milestones"]`."""
    counts = figures["counts"]
    delivered = figures["items"] - figures["open"]
    late = counts["late"] + counts["missed"]
    final = is_final(figures, closed)
    head = "Final report" if final else "Milestone summary"
    out = [f"{head}: {title}" if title else head, ""]
    out.append(
        f"Delivered {delivered} · open {figures['open']} · late {late} · "
        f"dropped {counts['dropped']}"
    )
    due = date.fromisoformat(figures["due_date"]) if figures["due_date"] else None
    chance = figures["chance_on_time"]
    if final:
        on_time = delivered - counts["late"]
        out.append(
            f"Due {day_words(due, today)}: {on_time} of {figures['items']} delivered on time"
            if due
            else f"{on_time} of {figures['items']} delivered on time"
        )
    elif due is not None:
        left = figures["days_left"]
        when = "due today" if left == 0 else f"{days_words(left)} left"
        words = f"Due {day_words(due, today)}: {when}"
        if chance is not None and chance["high"] == 0:
            # Zero at both ends: it cannot finish on time any more (ledger.milestones).
            words += " · it can no longer finish on time: an item is already late or missed"
        elif chance is not None:
            words += f" · chance of finishing on time {estimate_words(chance)}"
        out.append(words)
    out.append(f"Updated {day_words(today, today)} by trackrecord")
    return out


def block(figures: dict, *, title: str | None, today: date, closed: bool) -> str:
    """The marked block of a GitHub milestone's description."""
    body = "\n".join(lines(figures, title=None, today=today, closed=closed))
    return f"{START}\n{body}\n{END}"


def comment(platform: str, scope: str, figures: dict, *, title, today, closed) -> str:
    """A tracking issue's comment, found again by its marker."""
    body = "\n".join(lines(figures, title=title, today=today, closed=closed))
    return f"{body}\n\n{marker(platform, scope)}\n"
