"""The response schemas of the OpenAPI document (webhook_app/openapi.py): what each JSON body
holds, its required fields, types and enums, closed (`additionalProperties: false`) so that a
field added to a view without a word here fails the fuzz test's schema check.

Names come from their homes: the outcome names and count fields from ledger.outcomes, the report
formats from reports.render, the send statuses from ledger.report_rows.
"""

from __future__ import annotations

from ledger.outcomes import COUNT_FIELD, PROMISED, values
from ledger.report_rows import SendStatus
from reports.render import FORMATS

JSON = "application/json"
INT = {"type": "integer", "minimum": 0}
STRING = {"type": "string"}
TEXT_OR_NULL = {"type": ["string", "null"]}
NUMBER_OR_NULL = {"type": ["number", "null"]}
DATE = {"type": "string", "format": "date"}
DATE_OR_NULL = {"type": ["string", "null"], "format": "date"}
INSTANT = {"type": "string", "format": "date-time"}
INSTANT_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
# A share of promises: None when nothing was due.
RATE = {"type": ["number", "null"], "minimum": 0, "maximum": 1}
MONTH = {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"}
OUTCOME = {"type": "string", "enum": list(values(PROMISED))}


def closed(properties: dict, *, optional: tuple[str, ...] = ()) -> dict:
    """An object with exactly these fields, all required but `optional`."""
    return {
        "type": "object",
        "required": [name for name in properties if name not in optional],
        "properties": properties,
        "additionalProperties": False,
    }


def json_body(description: str, schema: dict) -> dict:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def problem(description: str, codes: list[str], *, challenge: bool = False) -> dict:
    """An error answer: `{"error": code, "message": ...}` (webhook_app/errors.py)."""
    schema = {
        "type": "object",
        "required": ["error", "message"],
        "properties": {"error": {"type": "string", "enum": codes}, "message": STRING},
    }
    answer = json_body(description, schema)
    if challenge:
        answer["headers"] = {
            "WWW-Authenticate": {
                "description": 'Bearer realm="trackrecord" (RFC 6750).',
                "required": True,
                "schema": {"type": "string", "pattern": "^Bearer "},
            }
        }
    return answer


PROBABILITY = {"type": "number", "minimum": 0, "maximum": 1}
INTERVAL = closed({"estimate": PROBABILITY, "low": PROBABILITY, "high": PROBABILITY})
COUNTS = {name: INT for name in ("commitments_due", *COUNT_FIELD.values(), "excluded")}

_RECORD = {
    "from": DATE,
    "to": DATE,
    "as_of": INSTANT,
    "summary": STRING,
    **COUNTS,
    "on_time_rate": RATE,
    "say_do_ratio": RATE,
    "slip_days_median": NUMBER_OR_NULL,
    "slip_days_p90": NUMBER_OR_NULL,
    "streak_current": INT,
    "streak_longest": INT,
    "small_wins": INT,
    "unpromised_deliveries": INT,
    "first_response_hours_median": NUMBER_OR_NULL,
    "lead_time_days_median": NUMBER_OR_NULL,
    "first_win_days": NUMBER_OR_NULL,
    "trust_score": INTERVAL,
    "months": {
        "type": "array",
        "items": closed({"month": MONTH, **COUNTS, "on_time_rate": RATE, "say_do_ratio": RATE}),
    },
    "next_due": DATE_OR_NULL,
}
TEAM_RECORD = closed({"team": STRING, **_RECORD})
CLIENT_RECORD = closed({"client": STRING, **_RECORD})

TEAMS = closed(
    {
        "teams": {
            "type": "array",
            "items": closed(
                {
                    "name": STRING,
                    "client": STRING,
                    "timezone": STRING,
                    "summary": STRING,
                    "summary_days": INT,
                }
            ),
        }
    }
)

MILESTONE = closed(
    {
        "scope": STRING,
        "title": TEXT_OR_NULL,
        "due_date": DATE_OR_NULL,
        "days_left": {"type": ["integer", "null"]},
        "items": INT,
        "progress": RATE,
        "counts": closed({name: INT for name in (*values(PROMISED), "excluded")}),
        "open": INT,
        # None for a scope whose items all left it (dropped, descoped or excluded).
        "chance_on_time": {"oneOf": [{"type": "null"}, INTERVAL]},
    }
)
MILESTONES = closed(
    {
        "team": STRING,
        "as_of": INSTANT,
        "trust_score": INTERVAL,
        "milestones": {"type": "array", "items": MILESTONE},
    }
)

EXCLUSION = closed({"reason": TEXT_OR_NULL, "by": TEXT_OR_NULL, "at": INSTANT_OR_NULL})
COMMITMENT = closed(
    {
        "item": STRING,
        "title": TEXT_OR_NULL,
        "scope": TEXT_OR_NULL,
        "promised_date": DATE,
        "first_promised": DATE_OR_NULL,
        "latest_promised": DATE_OR_NULL,
        "promised_at": INSTANT_OR_NULL,
        "deadline": INSTANT_OR_NULL,
        # As the figures read it (an overdue pending row is missed); `recorded_outcome` is the
        # row as stored.
        "outcome": OUTCOME,
        "recorded_outcome": OUTCOME,
        "settled_at": INSTANT_OR_NULL,
        "delivered_at": INSTANT_OR_NULL,
        "slip_days": {"type": ["integer", "null"]},
        "repromise_count": INT,
        "small": {"type": "boolean"},
        "excluded": {"type": "boolean"},
        "exclusion": {"oneOf": [{"type": "null"}, EXCLUSION]},
    }
)
LINK = {"type": ["string", "null"], "pattern": "^/api/v1/teams/"}
COMMITMENTS = closed(
    {
        "team": STRING,
        "from": DATE,
        "to": DATE,
        "page": {"type": "integer", "minimum": 1},
        "per_page": {"type": "integer", "minimum": 1},
        "total": INT,
        "pages": {"type": "integer", "minimum": 1},
        "next": LINK,
        "prev": LINK,
        "commitments": {"type": "array", "items": COMMITMENT},
    }
)

SEND = closed(
    {
        "channel": {"type": "string", "enum": ["github", "email"]},
        "target": STRING,
        "resend": INT,
        "status": {"type": "string", "enum": list(SendStatus.ALL)},
        "attempts": INT,
        "external_id": TEXT_OR_NULL,
        "error": TEXT_OR_NULL,
        "sent_at": INSTANT_OR_NULL,
        "updated_at": INSTANT_OR_NULL,
    }
)
REPORT_LIST = closed(
    {
        "client": STRING,
        "reports": {
            "type": "array",
            "items": closed(
                {
                    "month": MONTH,
                    "formats": {
                        "type": "object",
                        "propertyNames": {"enum": list(FORMATS)},
                        "additionalProperties": closed(
                            {
                                "url": {"type": "string", "pattern": "^/reports/"},
                                "built_at": INSTANT,
                            }
                        ),
                    },
                    "sends": {"type": "array", "items": SEND},
                }
            ),
        },
    }
)

HEALTH = closed({"status": {"const": "ok"}})
_PARTS = ("database", "redis")
READY = closed(
    {"status": {"const": "ready"}, "checks": closed({p: {"const": "ok"} for p in _PARTS})}
)
UNAVAILABLE = closed(
    {
        "status": {"const": "unavailable"},
        "failing": {"type": "array", "items": {"enum": list(_PARTS)}, "minItems": 1},
        "checks": closed({p: STRING for p in _PARTS}),
    }
)
