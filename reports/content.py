"""What a client's monthly report says, as one JSON-able dict: every figure under the API's
field names, taken from the ledger's own figures (`ledger.record.record`, the client's and each
team's), and every item behind them (`reports.items`). Nothing here recomputes a figure; it
picks, groups and words.

The month is read in the client's timezone, like the client's record on the API; each team's
row uses the team's own timezone and trust half-life, as the team's record does. Figures are as
of the end of the month (`ledger.record`: a past period's record is reproducible), so a report
built again later says the same, except for what the ledger learnt since (a late delivery).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from ledger.outcomes import DELIVERED, KEPT, Outcome
from ledger.reading import end_of_day, month_end, start_of_day, supported
from ledger.record import record
from reports import items
from reports.words import DEFINITIONS, DEFINITIONS_SOURCE, lead_sentence, what_happened

_MONTH = re.compile(r"\d{4}-\d{2}")
# What did not go well, in the order a reader is told it: broken first, then withdrawn.
_NOT_WELL = (Outcome.MISSED, Outcome.DROPPED, Outcome.LATE, Outcome.DESCOPED)
_STANDING = (Outcome.PENDING, *sorted(DELIVERED))


def parse_month(month: str) -> date:
    """'2026-05' -> date(2026, 5, 1); ValueError in plain words otherwise."""
    if not isinstance(month, str) or not _MONTH.fullmatch(month):
        raise ValueError(f"month {month!r} is not a month like 2026-05 (YYYY-MM)")
    year, number = int(month[:4]), int(month[5:])
    if not 1 <= number <= 12:
        raise ValueError(f"month {month!r} is not a month like 2026-05 (YYYY-MM)")
    first = date(year, number, 1)
    if not supported(first):
        raise ValueError(f"month {month!r} is out of range")
    return first


def last_month(now: datetime, tz: str) -> str:
    """The month before `now`'s month in the timezone `tz` (the default month of a report)."""
    today = now.astimezone(ZoneInfo(tz)).date()
    return f"{today.year - (today.month == 1)}-{(today.month - 2) % 12 + 1:02d}"


def shift(first: date, months: int) -> date:
    """The first day of the month `months` after (or before) `first`'s."""
    index = first.year * 12 + first.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def build_report(conn: Connection, config, client: str, month: str, *, now: datetime) -> dict:
    """The report of `client` (a name in `config`, a trackrecord.config.Config) for `month`
    ('YYYY-MM'), which must be over in the client's timezone at `now`."""
    model = config.client(client)
    if model is None:
        raise ValueError(f"no client {client!r} in the configuration")
    first = parse_month(month)
    last = month_end(first)
    tz = ZoneInfo(model.timezone)
    if now < end_of_day(last, tz):
        raise ValueError(
            f"month {month} is not over yet in {model.timezone}: a report covers a finished month"
        )
    team_names = [t.name for t in model.teams]

    def client_record(period_from: date) -> dict:
        return record(
            conn,
            teams=team_names,
            client=client,
            period_from=period_from,
            period_to=month_end(period_from),
            now=now,
            tz=tz,
            half_life_days=model.record_half_life_days,
        )

    this = client_record(first)
    previous = client_record(shift(first, -1))
    previous.pop("months")  # the trend is this month's; the previous month is a comparison
    as_of = datetime.fromisoformat(this["as_of"])
    rows = items.commitments(conn, teams=team_names, period_from=first, period_to=last, as_of=as_of)
    following = shift(first, 1)
    ahead = items.commitments(
        conn,
        teams=team_names,
        period_from=following,
        period_to=month_end(following),
        as_of=now,
    )
    for r in (*rows, *ahead):
        r["what_happened"] = what_happened(r, last, tz)
    live = [r for r in rows if not r["excluded"]]
    return {
        "client": client,
        "month": month,
        "from": first.isoformat(),
        "to": last.isoformat(),
        "timezone": model.timezone,
        "generated_at": now.astimezone(UTC).isoformat(),
        "as_of": this["as_of"],
        "summary": this["summary"],
        "headline": lead_sentence(this, previous),
        "record": this,
        "previous": {"month": f"{shift(first, -1):%Y-%m}", **previous},
        "trend": [_trend_point(m) for m in this["months"]],
        "teams": [_team(conn, t, first, last, now) for t in model.teams],
        "went_well": {
            "kept": [r for r in live if r["outcome"] in KEPT],
            "small_wins": [r for r in live if r["small"] and r["outcome"] in DELIVERED],
            "unpromised": items.unpromised(
                conn, client=client, start=start_of_day(first, tz), end=end_of_day(last, tz)
            ),
        },
        "did_not_go_well": [r for o in _NOT_WELL for r in live if r["outcome"] == o],
        "excluded": [r for r in rows if r["excluded"]],
        "next_month": {
            "month": f"{following:%Y-%m}",
            "promises": [r for r in ahead if not r["excluded"] and r["outcome"] in _STANDING],
        },
        "definitions": DEFINITIONS,
        "definitions_source": DEFINITIONS_SOURCE,
    }


def _trend_point(m: dict) -> dict:
    """One month of the trend: its volume and on-time rate, and the counts behind them."""
    kept = sum(m[f] for f in ("delivered_early", "delivered_on_time"))
    return {
        "month": m["month"],
        "commitments_due": m["commitments_due"],
        "kept": kept,
        "broken": sum(m[f] for f in ("delivered_late", "missed", "dropped")),
        "on_time_rate": m["on_time_rate"],
        "say_do_ratio": m["say_do_ratio"],
    }


def _team(conn: Connection, team, first: date, last: date, now: datetime) -> dict:
    """One team's record of the month with its own settings (the team's API record)."""
    return record(
        conn,
        teams=[team.name],
        period_from=first,
        period_to=last,
        now=now,
        tz=ZoneInfo(team.timezone),
        half_life_days=team.trust_half_life_days,
    )
