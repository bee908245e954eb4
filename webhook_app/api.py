"""The JSON API of track records: thin views over ledger.record, ledger.milestones and
ledger.listing, behind bearer tokens.

Checks run in a fixed order, each with its own status (as the webhook routes do): token (401),
the team or client is one this token may see (404), then the query string (400).
Who may read what is `webhook_app.auth`.

Every integer query parameter goes through `_int`: ASCII digits only (`str.isdigit` accepts
"²", and `int()` accepts "٣" and "1_000"), at most 9 of them, within explicit bounds; anything
else is a 400 `bad_parameter` naming the parameter and its bounds, never a 500 from the
database (a page of 2**63 overflows PostgreSQL's bigint offset).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, jsonify, request, url_for

from ledger import listing, record
from ledger.milestones import team_milestones
from ledger.reading import FIRST_YEAR, LAST_YEAR, supported
from webhook_app.auth import ADMIN, client_for, principal, team_for
from webhook_app.errors import Rejected
from webhook_app.services import services

bp = Blueprint("api", __name__, url_prefix="/api/v1")

# ASCII digits only, and with fullmatch: `\d` takes other scripts' digits and `$` a final newline.
DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
INT_RE = re.compile(r"[0-9]{1,9}")
DEFAULT_PER_PAGE, MAX_PER_PAGE = 50, 500
MAX_PAGE = 100_000


def _date(name: str) -> date:
    raw = request.args.get(name)
    if not raw:
        raise Rejected(400, "missing_date", f"query parameter {name!r} (YYYY-MM-DD) is required")
    try:
        if not DATE_RE.fullmatch(raw):
            raise ValueError
        day = date.fromisoformat(raw)
    except ValueError:
        raise Rejected(400, "bad_date", f"{name}={raw!r} is not a date YYYY-MM-DD") from None
    if not supported(day):
        raise Rejected(
            400, "bad_date", f"{name}={raw!r} is out of range (years {FIRST_YEAR} to {LAST_YEAR})"
        )
    return day


def _period() -> tuple[date, date]:
    period_from, period_to = _date("from"), _date("to")
    if period_from > period_to:
        raise Rejected(400, "bad_period", "'from' is after 'to'")
    return period_from, period_to


def _int(name: str, default: int, least: int, most: int) -> int:
    """The integer query parameter `name`, `default` when absent, else within least..most."""
    raw = request.args.get(name)
    if raw is None:
        return default
    if not INT_RE.fullmatch(raw) or not least <= int(raw) <= most:
        raise Rejected(
            400,
            "bad_parameter",
            f"{name}={raw[:20]!r}: {name} must be a whole number from {least} to {most}",
        )
    return int(raw)


@bp.get("/teams")
def teams():
    """The teams this token may see, each with the words of its last 90 days (the badge's)."""
    who = principal()
    config = services().settings.config
    now, listed = datetime.now(UTC), []
    with services().sessions() as session:
        for client in config.clients:
            if who is not ADMIN and client.name != who:
                continue
            for team in client.teams:
                words = record.badge(
                    session.connection(), team=team.name, now=now, tz=ZoneInfo(team.timezone)
                )
                listed.append(
                    {
                        "name": team.name,
                        "client": client.name,
                        "timezone": team.timezone,
                        "summary": words.words,
                        "summary_days": record.BADGE_DAYS,
                    }
                )
    return jsonify(teams=listed)


@bp.get("/teams/<team>/track-record")
def team_record(team: str):
    model, _ = team_for(principal(), team)
    period_from, period_to = _period()
    with services().sessions() as session:
        body = record.team_record(
            session.connection(), model, period_from=period_from, period_to=period_to
        )
    return jsonify(body)


@bp.get("/clients/<client>/track-record")
def client_record(client: str):
    model = client_for(principal(), client)
    period_from, period_to = _period()
    with services().sessions() as session:
        body = record.record(
            session.connection(),
            teams=[t.name for t in model.teams],
            client=client,
            period_from=period_from,
            period_to=period_to,
            tz=ZoneInfo(model.timezone),
            half_life_days=model.record_half_life_days,
        )
    return jsonify(body)


@bp.get("/teams/<team>/milestones")
def milestones(team: str):
    model, _ = team_for(principal(), team)
    with services().sessions() as session:
        body = team_milestones(
            session.connection(),
            team=team,
            now=datetime.now(UTC),
            tz=ZoneInfo(model.timezone),
            half_life_days=model.trust_half_life_days,
        )
    return jsonify(body)


@bp.get("/teams/<team>/commitments")
def commitments(team: str):
    team_for(principal(), team)
    period_from, period_to = _period()
    page = _int("page", 1, 1, MAX_PAGE)
    per_page = _int("per_page", DEFAULT_PER_PAGE, 1, MAX_PER_PAGE)
    with services().sessions() as session:
        total, rows = listing.commitments_page(
            session.connection(),
            team=team,
            period_from=period_from,
            period_to=period_to,
            as_of=datetime.now(UTC),
            page=page,
            per_page=per_page,
        )
    pages = max(1, -(-total // per_page))

    def link(number: int) -> str | None:
        if not 1 <= number <= pages:
            return None
        args = {"from": period_from.isoformat(), "to": period_to.isoformat()}
        return url_for(".commitments", team=team, page=number, per_page=per_page, **args)

    return jsonify(
        team=team,
        **{"from": period_from.isoformat(), "to": period_to.isoformat()},
        page=page,
        per_page=per_page,
        total=total,
        pages=pages,
        next=link(page + 1),
        prev=link(page - 1) if page <= pages else None,
        commitments=rows,
    )
