"""The OpenAPI 3.1 document of the JSON API (issue 11), served at `GET /api/v1/openapi.json`.

Public, with no token: it describes routes and holds no data. This module is the document's one
home; its bounds and names come from the modules that enforce them (api.py's paging, the
ledger's outcomes and supported years, the report formats), so the two cannot drift apart.
tests/test_openapi.py fails on an /api/v1 route with no operation here, and fuzzes every
operation with schemathesis: no 5xx, every answer documented and shaped as said here.
"""

from __future__ import annotations

from functools import cache

from flask import Blueprint, jsonify

from ledger.outcomes import COUNT_FIELD, PROMISED, values
from ledger.reading import FIRST_YEAR, LAST_YEAR
from ledger.record import BADGE_DAYS
from reports.render import FORMATS
from webhook_app.api import DEFAULT_PER_PAGE, MAX_PAGE, MAX_PER_PAGE
from webhook_app.openapi_schemas import (
    CLIENT_RECORD,
    COMMITMENTS,
    HEALTH,
    MILESTONES,
    READY,
    REPORT_LIST,
    TEAM_RECORD,
    TEAMS,
    UNAVAILABLE,
    json_body,
    problem,
)

bp = Blueprint("openapi", __name__, url_prefix="/api/v1")

SVG = "image/svg+xml"
BEARER = [{"bearer": []}]


def _path(name: str, what: str) -> dict:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": what,
        "schema": {"type": "string", "minLength": 1},
    }


def _date(name: str, what: str) -> dict:
    return {
        "name": name,
        "in": "query",
        "required": True,
        "description": f"{what}, YYYY-MM-DD, years {FIRST_YEAR} to {LAST_YEAR}; "
        "`from` must not be after `to`.",
        "schema": {"type": "string", "format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
    }


def _int(name: str, what: str, default: int, most: int) -> dict:
    # The server takes at most 9 ASCII digits; the bounds say the rest.
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": what,
        "schema": {"type": "integer", "minimum": 1, "maximum": most, "default": default},
    }


TEAM = _path("team", "A team's name, as configured.")
CLIENT = _path("client", "A client's name, as configured.")
PERIOD = [_date("from", "First day of the period"), _date("to", "Last day of the period")]
NOT_FOUND = problem(
    "No such team or client for this token: another client's answers the same as one that "
    "exists nowhere (no existence leaks).",
    ["not_found"],
)
UNAUTHORIZED = problem("No bearer token, or an unknown one.", ["unauthorized"], challenge=True)


def _operation(summary: str, ok: dict, *, params=(), bad=None) -> dict:
    """A GET behind the bearer token: 401 first, then 404 for a name in the path that this
    token may not see, then 400 for the query string (api.py's order)."""
    responses = {"200": ok, "401": UNAUTHORIZED}
    if any(p["in"] == "path" for p in params):
        responses["404"] = NOT_FOUND
    if bad:
        responses["400"] = problem("A query parameter is missing or out of bounds.", bad)
    return {"get": {"summary": summary, "parameters": list(params), "responses": responses}}


def _badge() -> dict:
    no_badge = "The team is unknown or its badge is off: the same 'no badge' SVG for both."
    return {
        "get": {
            "summary": f"The team's on-time rate over the last {BADGE_DAYS} days, as an SVG.",
            "description": "Public. Cache-Control public, max-age=300, with an ETag.",
            "security": [],
            "parameters": [
                _path("team", "A team's name."),
                {
                    "name": "If-None-Match",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string"},
                },
            ],
            "responses": {
                "200": {"description": "The badge.", "content": {SVG: {"schema": {}}}},
                "304": {"description": "Unchanged since the ETag sent."},
                # A name holding a '/' matches no route: the app's JSON 404.
                "404": {
                    "description": no_badge,
                    "content": {SVG: {"schema": {}}, **NOT_FOUND["content"]},
                },
            },
        }
    }


def _report_file() -> dict:
    formats = "|".join(FORMATS)
    name = {
        "name": "name",
        "in": "path",
        "required": True,
        "description": f"YYYY-MM.FORMAT, FORMAT one of {', '.join(FORMATS)}.",
        "schema": {"type": "string", "pattern": f"^[0-9]{{4}}-[0-9]{{2}}\\.({formats})$"},
    }
    types = ["text/html", "application/pdf", "text/markdown", "application/json"]
    op = _operation(
        "A monthly report as stored, built on its first request once the month is over.",
        {"description": "The report.", "content": {t: {"schema": {}} for t in types}},
        params=[CLIENT, name],
    )
    op["get"]["description"] = (
        "A bearer token or a signed-in session. A month not over in the client's timezone, "
        "or another format, is a 404 like any report that does not exist."
    )
    return op


@cache
def document() -> dict:
    """The OpenAPI document, built once per process."""
    paging = [
        _int("page", "Page number.", 1, MAX_PAGE),
        _int("per_page", "Commitments a page.", DEFAULT_PER_PAGE, MAX_PER_PAGE),
    ]
    period_errors = ["missing_date", "bad_date", "bad_period"]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "trackrecord",
            "version": "1",
            "description": "Track records of promises kept: teams, clients, milestones, "
            "commitments and monthly reports. A client's token reads its own teams only; "
            f"the admin token reads all. Outcomes: {', '.join(values(PROMISED))}. "
            f"Count fields: {', '.join(COUNT_FIELD.values())}. docs/api.md, docs/metrics.md.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/api/v1/teams": _operation(
                "The teams this token may see, with the words of their last 90 days.",
                json_body("Teams.", TEAMS),
            ),
            "/api/v1/teams/{team}/track-record": _operation(
                "A team's record for a period.",
                json_body("The record.", TEAM_RECORD),
                params=[TEAM, *PERIOD],
                bad=period_errors,
            ),
            "/api/v1/clients/{client}/track-record": _operation(
                "A client's record for a period, over all its teams.",
                json_body("The record.", CLIENT_RECORD),
                params=[CLIENT, *PERIOD],
                bad=period_errors,
            ),
            "/api/v1/teams/{team}/milestones": _operation(
                "A team's milestones: progress and the chance of finishing on time.",
                json_body("Milestones, latest due date first.", MILESTONES),
                params=[TEAM],
            ),
            "/api/v1/teams/{team}/commitments": _operation(
                "A team's promises due in a period, oldest first, a page at a time.",
                json_body("A page of commitments.", COMMITMENTS),
                params=[TEAM, *PERIOD, *paging],
                bad=[*period_errors, "bad_parameter"],
            ),
            "/api/v1/clients/{client}/reports": _operation(
                "A client's monthly reports: what was built and what was sent, newest first.",
                json_body("Reports.", REPORT_LIST),
                params=[CLIENT],
            ),
            "/reports/{client}/{name}": _report_file(),
            "/badges/{team}.svg": _badge(),
            "/healthz": {
                "get": {
                    "summary": "The process runs.",
                    "security": [],
                    "responses": {"200": json_body("Alive.", HEALTH)},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "The database and Redis answer.",
                    "security": [],
                    "responses": {
                        "200": json_body("Ready.", READY),
                        "503": json_body("A part does not answer.", UNAVAILABLE),
                    },
                }
            },
            "/api/v1/openapi.json": {
                "get": {
                    "summary": "This document.",
                    "security": [],
                    "responses": {
                        "200": json_body(
                            "OpenAPI 3.1.", {"type": "object", "required": ["openapi", "paths"]}
                        )
                    },
                }
            },
        },
        "security": BEARER,
    }


@bp.get("/openapi.json")
def openapi_json():
    return jsonify(document())
