"""Reading the ledger for one team or client: only its rows, through the indexed columns.

Thin I/O. The rows become `ledger.outcomes.Commitment` values and `ledger.metrics` does the
arithmetic: the reference the database aggregation (`ledger.figures.record_sql`, which the API,
the CLI and the badge answer with) is tested equal to. A pending row
whose deadline has passed at `as_of` is read as `missed`, settled at its deadline (the ledger
stores it as pending until a worker notices; the figures must not wait for that).
The database-side aggregation for the full recompute is in `ledger.aggregates`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, tzinfo

from sqlalchemy import Connection, String, and_, false, func, or_, select, type_coerce

from ledger.outcomes import Commitment, Outcome
from ledger.tables import Commitment as CommitmentRow
from ledger.tables import Exclusion, Item

C = CommitmentRow.__table__
I = Item.__table__  # noqa: E741  (the table of items, as in SQL)

# The outcomes of promises. `unpromised` and `linked` rows are deliveries without a promise.
PROMISE_OUTCOMES = tuple(
    o.value
    for o in (
        Outcome.EARLY,
        Outcome.ON_TIME,
        Outcome.LATE,
        Outcome.MISSED,
        Outcome.DROPPED,
        Outcome.DESCOPED,
        Outcome.PENDING,
    )
)


def utc(value: datetime | None) -> datetime | None:
    """Stored times as aware UTC. SQLite hands back naive values; the ledger writes UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def start_of_day(day: date, tz: tzinfo = UTC) -> datetime:
    return datetime.combine(day, time.min, tzinfo=tz)


def owner_filter(*, teams: Sequence[str] | None = None, client: str | None = None):
    """WHERE clause for one team's or one client's rows; each matches a (x, promised_date) index."""
    if (teams is None) == (client is None):
        raise ValueError("pass teams or client, not both")
    if client is not None:
        return C.c.client == client
    return C.c.team == teams[0] if len(teams) == 1 else C.c.team.in_(list(teams))


def item_key(item_id: int) -> str:
    """The tie-break key of a commitment in settlement order: its item id, zero-padded so that
    sorting the text sorts the numbers (the SQL path orders by item_id)."""
    return f"{item_id:012d}"


def load_history(
    conn: Connection,
    *,
    as_of: datetime,
    teams: Sequence[str] | None = None,
    client: str | None = None,
    promised_between: tuple[date, date] | None = None,
) -> list[Commitment]:
    """Every promise of the team(s) or client, as `Commitment` values for ledger.metrics.

    The whole history is read unless `promised_between` narrows it: streaks, the time to first
    win and the trust score look at all of it. It is one index range per team.
    """
    as_of = utc(as_of)
    times = _TimeReader(conn)
    stmt = select(
        C.c.item_id,
        C.c.team,
        times.column(C.c.promised_date),
        times.column(C.c.promised_at),
        times.column(C.c.deadline),
        C.c.outcome,
        times.column(C.c.settled_at),
        times.column(C.c.delivered_at),
        C.c.slip_days,
        C.c.small,
        C.c.excluded,
    ).where(
        owner_filter(teams=teams, client=client),
        C.c.promised_date.is_not(None),
        C.c.outcome.in_(PROMISE_OUTCOMES),
    )
    if promised_between is not None:
        stmt = stmt.where(C.c.promised_date.between(*promised_between))
    history = []
    ts, day, outcomes = times.datetime, times.date, _OUTCOMES
    rows = conn.execute(stmt)
    for item_id, team, promised, made, deadline, outcome, settled, delivered, *rest in rows:
        outcome, settled, deadline = outcomes[outcome], ts(settled), ts(deadline)
        if outcome is Outcome.PENDING and deadline is not None and deadline <= as_of:
            outcome, settled = Outcome.MISSED, deadline
        slip, small, excluded = rest
        history.append(
            Commitment(
                f"{item_id:012d}",  # item_key(): the SQL path's tie-break order
                team,
                day(promised),
                ts(made),
                outcome,
                settled,
                ts(delivered),
                slip,
                bool(small),
                bool(excluded),
                deadline,  # a late delivery settles here (Commitment.settlement_time)
            )
        )
    return history


_OUTCOMES = {o.value: o for o in Outcome}


class _TimeReader:
    """Dates and times of the ledger rows, read fast.

    SQLAlchemy parses SQLite's stored text with a regular expression per value; at a team's few
    thousand rows that is most of a request's time budget (docs/benchmarks.md). On SQLite the
    text is read as is and parsed by datetime.fromisoformat (C); PostgreSQL's driver already
    returns datetimes. Either way the result is aware UTC: the ledger writes UTC.
    """

    def __init__(self, conn: Connection):
        self.text = conn.dialect.name == "sqlite"

    def column(self, col):
        return type_coerce(col, String).label(col.name) if self.text else col

    def datetime(self, value):
        if value is None:
            return None
        if self.text:
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
        return value if value.tzinfo is UTC else value.astimezone(UTC)

    def date(self, value):
        return date.fromisoformat(value) if self.text else value


def unpromised_deliveries(
    conn: Connection, *, start: datetime, end: datetime, teams=None, client=None
) -> int:
    """Items delivered in [start, end) with no promise; excluded rows are left out."""
    stmt = select(func.count()).where(
        owner_filter(teams=teams, client=client),
        C.c.outcome == Outcome.UNPROMISED.value,
        C.c.excluded == false(),
        C.c.delivered_at >= utc(start),
        C.c.delivered_at < utc(end),
    )
    return conn.execute(stmt).scalar_one()


def first_response_hours(
    conn: Connection, *, teams: Sequence[str], start: datetime, end: datetime
) -> list[float]:
    """First-response times, in hours, of the items opened in [start, end); an item whose
    ledger row was excluded by hand (a duplicate, a mistake) is left out like its row."""
    stmt = (
        select(I.c.first_response_seconds)
        .outerjoin(C, C.c.item_id == I.c.id)
        .where(
            I.c.team.in_(list(teams)),
            I.c.first_response_seconds.is_not(None),
            and_(I.c.opened_at >= utc(start), I.c.opened_at < utc(end)),
            or_(C.c.excluded.is_(None), C.c.excluded == false()),
        )
    )
    return [seconds / 3600.0 for seconds in conn.execute(stmt).scalars()]


def commitments_page(
    conn: Connection,
    *,
    team: str,
    period_from: date,
    period_to: date,
    as_of: datetime,
    page: int,
    per_page: int,
) -> tuple[int, list[dict]]:
    """(total, rows of the page) of the team's promises due in the period, oldest promise first.

    `outcome` is read as the figures read it (an overdue pending row is `missed`);
    `recorded_outcome` is what the ledger row holds.
    """
    where = (
        C.c.team == team,
        C.c.promised_date.between(period_from, period_to),
        C.c.outcome.in_(PROMISE_OUTCOMES),
    )
    total = conn.execute(select(func.count()).select_from(C).where(*where)).scalar_one()
    stmt = (
        select(C, I.c.key.label("item_key"), I.c.title, I.c.scope)
        .join(I, I.c.id == C.c.item_id)
        .where(*where)
        .order_by(C.c.promised_date, C.c.item_id)
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    as_of = utc(as_of)
    rows = []
    for r in conn.execute(stmt):
        deadline = utc(r.deadline)
        overdue = r.outcome == Outcome.PENDING.value and deadline and deadline <= as_of
        rows.append(
            {
                "item": r.item_key,
                "title": r.title,
                "scope": r.scope,
                "promised_date": r.promised_date.isoformat(),
                "first_promised": _iso(r.first_promised),
                "latest_promised": _iso(r.latest_promised),
                "promised_at": _iso(utc(r.promised_at)),
                "deadline": _iso(deadline),
                "outcome": Outcome.MISSED.value if overdue else r.outcome,
                "recorded_outcome": r.outcome,
                "settled_at": _iso(deadline if overdue else utc(r.settled_at)),
                "delivered_at": _iso(utc(r.delivered_at)),
                "slip_days": r.slip_days,
                "repromise_count": r.repromise_count,
                "small": bool(r.small),
                "excluded": bool(r.excluded),
                "exclusion": None,
            }
        )
    _attach_exclusions(conn, rows, [r["item"] for r in rows if r["excluded"]])
    return total, rows


def _attach_exclusions(conn: Connection, rows: list[dict], keys: list[str]) -> None:
    """Why, by whom and when an excluded row was excluded: exclusions are audited in the open,
    so whoever reads the ledger sees the reason next to the row it hides from the figures."""
    if not keys:
        return
    X = Exclusion.__table__
    active = conn.execute(
        select(I.c.key, X.c.reason, X.c.excluded_by, X.c.excluded_at)
        .join(X, X.c.item_id == I.c.id)
        .where(I.c.key.in_(keys), X.c.undone_at.is_(None))
        .order_by(X.c.excluded_at)
    )
    found = {
        key: {"reason": why, "by": who, "at": _iso(utc(when))} for key, why, who, when in active
    }
    for row in rows:
        if row["excluded"]:
            row["exclusion"] = found.get(row["item"])


def scope_rows(
    conn: Connection, *, team: str, as_of: datetime
) -> list[tuple[str, date, str, bool]]:
    """(scope, promised_date, outcome, excluded) of the team's promises that sit in a scope
    (milestone, fix version, sprint), for ledger.milestones; an overdue pending row is a miss."""
    stmt = (
        select(I.c.scope, C.c.promised_date, C.c.outcome, C.c.deadline, C.c.excluded)
        .join(I, I.c.id == C.c.item_id)
        .where(
            C.c.team == team,
            I.c.scope.is_not(None),
            C.c.promised_date.is_not(None),
            C.c.outcome.in_(PROMISE_OUTCOMES),
        )
    )
    as_of = utc(as_of)
    rows = []
    for scope, promised, outcome, deadline, excluded in conn.execute(stmt):
        deadline = utc(deadline)
        if outcome == Outcome.PENDING.value and deadline is not None and deadline <= as_of:
            outcome = Outcome.MISSED.value
        rows.append((scope, promised, outcome, bool(excluded)))
    return rows


def _iso(value: date | datetime | None) -> str | None:
    return None if value is None else value.isoformat()
