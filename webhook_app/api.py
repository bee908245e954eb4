"""The JSON API of track records: thin views over ledger.records, behind bearer tokens.

Checks run in a fixed order, each with its own status (as the webhook routes do): token (401),
the team or client exists (404), the token may read it (403), then the query string (400).
A client's token comes from the variable its `token_env` names and reads only its own teams;
`TRACKRECORD_ADMIN_TOKEN` reads all. Tokens are read from the environment on each request, so
rotating one needs no restart of the code path (only of the process environment).
"""

from __future__ import annotations

import hmac
import os
import re
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, jsonify, request, url_for

from ledger import queries, records
from ledger.milestones import milestone_figures
from ledger.trust import trust_score
from webhook_app.intake import Rejected, services

bp = Blueprint("api", __name__, url_prefix="/api/v1")

ADMIN = object()  # the principal of the admin token: every client
ADMIN_TOKEN_ENV = "TRACKRECORD_ADMIN_TOKEN"
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DEFAULT_PER_PAGE, MAX_PER_PAGE = 50, 500


class Unauthorized(Rejected):
    """401 with the challenge RFC 6750 asks for, so a client knows which scheme to use."""

    def __init__(self, message: str):
        super().__init__(401, "unauthorized", message)

    def response(self):
        body, status = super().response()
        return body, status, {"WWW-Authenticate": 'Bearer realm="trackrecord"'}


def principal():
    """ADMIN or the name of the client whose token was sent."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("send the API token as 'Authorization: Bearer <token>'")
    config = services().settings.config
    candidates = [(ADMIN, os.environ.get(ADMIN_TOKEN_ENV))]
    candidates += [(c.name, os.environ.get(c.token_env)) for c in config.clients if c.token_env]
    found = None
    for who, secret in candidates:
        # Every candidate is compared, in constant time, so timing says nothing about which
        # token came close. An unset or empty variable never matches.
        if secret and hmac.compare_digest(token.encode(), secret.encode()) and found is None:
            found = who
    if found is None:
        raise Unauthorized("unknown API token")
    return found


def _team(name: str):
    config = services().settings.config
    team = config.team(name)
    if team is None:
        raise Rejected(404, "unknown_team", f"no team {name!r}")
    return team, config.client_of(name)


def _allow(who, client_name: str) -> None:
    if who is not ADMIN and who != client_name:
        raise Rejected(403, "forbidden", "this token does not give access to that client's teams")


def _date(name: str) -> date:
    raw = request.args.get(name)
    if not raw:
        raise Rejected(400, "missing_date", f"query parameter {name!r} (YYYY-MM-DD) is required")
    try:
        if not DATE_RE.match(raw):
            raise ValueError
        day = date.fromisoformat(raw)
    except ValueError:
        raise Rejected(400, "bad_date", f"{name}={raw!r} is not a date YYYY-MM-DD") from None
    if not records.supported(day):
        raise Rejected(
            400,
            "bad_date",
            f"{name}={raw!r} is out of range (years {records.FIRST_YEAR} to {records.LAST_YEAR})",
        )
    return day


def _period() -> tuple[date, date]:
    period_from, period_to = _date("from"), _date("to")
    if period_from > period_to:
        raise Rejected(400, "bad_period", "'from' is after 'to'")
    return period_from, period_to


def _positive_int(name: str, default: int, most: int | None = None) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < 1 or (most is not None and int(raw) > most):
        limit = f" and at most {most}" if most else ""
        raise Rejected(400, f"bad_{name}", f"{name} must be a whole number from 1{limit}")
    return int(raw)


@bp.get("/teams/<team>/track-record")
def team_record(team: str):
    who = principal()
    model, client = _team(team)
    _allow(who, client.name)
    period_from, period_to = _period()
    with services().sessions() as session:
        body = records.team_record(
            session.connection(), model, period_from=period_from, period_to=period_to
        )
    return jsonify(body)


@bp.get("/clients/<client>/track-record")
def client_record(client: str):
    who = principal()
    model = services().settings.config.client(client)
    if model is None:
        raise Rejected(404, "unknown_client", f"no client {client!r}")
    _allow(who, model.name)
    period_from, period_to = _period()
    with services().sessions() as session:
        body = records.record(
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
    who = principal()
    model, client = _team(team)
    _allow(who, client.name)
    now = datetime.now(UTC)
    with services().sessions() as session:
        conn = session.connection()
        history = queries.load_history(conn, teams=[team], as_of=now)
        trust = trust_score(history, as_of=now, half_life_days=model.trust_half_life_days)
        rows = queries.scope_rows(conn, team=team, as_of=now)
    today = now.astimezone(ZoneInfo(model.timezone)).date()
    return jsonify(
        team=team,
        as_of=now.isoformat(),
        trust_score=trust.as_dict(),
        milestones=milestone_figures(rows, today=today, trust=trust),
    )


@bp.get("/teams/<team>/commitments")
def commitments(team: str):
    who = principal()
    _, client = _team(team)
    _allow(who, client.name)
    period_from, period_to = _period()
    page = _positive_int("page", 1)
    per_page = _positive_int("per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE)
    with services().sessions() as session:
        total, rows = queries.commitments_page(
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
