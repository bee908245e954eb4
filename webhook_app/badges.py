"""`GET /badges/<team>.svg`: the team's on-time rate over the last 90 days, as a README badge.

Public, with no token: a badge is embedded in READMEs and wikis, where no header can be sent.
It reveals one number (the 90-day on-time rate, rounded to a percent) and nothing else; a team
that does not want that public should not link it (the URL carries only the team's name, which
is in the config anyway). Unknown team: 404 in the API's JSON error shape.

Cacheable: `Cache-Control: public, max-age=300` (the rate moves slowly; GitHub's image proxy
and browsers then spare us most requests) and an ETag of the SVG itself, so a revalidation
answers 304 with no body when the number has not changed.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from html import escape
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, request

from ledger import records
from webhook_app.intake import Rejected, services

bp = Blueprint("badges", __name__)

MAX_AGE_SECONDS = 300
LABEL = "on-time"
# Colours of shields.io's palette: the badge reads like the other badges of a README.
COLOURS = ((0.9, "#4c1"), (0.75, "#dfb317"), (0.0, "#e05d44"))
NO_DATA = "#9f9f9f"


def _text_width(text: str) -> int:
    # Verdana 11px averages about 7 px a character; exact widths need the font's metrics, and
    # an approximate pad is what shields.io's own fallback does.
    return 7 * len(text) + 10


def render(rate: float | None) -> str:
    value = "n/a" if rate is None else f"{round(rate * 100)}%"
    colour = NO_DATA if rate is None else next(c for floor, c in COLOURS if rate >= floor)
    lw, vw = _text_width(LABEL), _text_width(value)
    title = escape(f"{LABEL}: {value} (last {records.BADGE_DAYS} days)")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{lw + vw}" height="20" role="img" '
        f'aria-label="{title}"><title>{title}</title>'
        f'<rect width="{lw}" height="20" fill="#555"/>'
        f'<rect x="{lw}" width="{vw}" height="20" fill="{colour}"/>'
        '<g fill="#fff" text-anchor="middle" font-family="Verdana,DejaVu Sans,sans-serif" '
        'font-size="11">'
        f'<text x="{lw / 2}" y="14">{LABEL}</text>'
        f'<text x="{lw + vw / 2}" y="14">{value}</text>'
        "</g></svg>"
    )


@bp.get("/badges/<team>.svg")
def badge(team: str):
    model = services().settings.config.team(team)
    if model is None:
        raise Rejected(404, "unknown_team", f"no team {team!r}")
    with services().sessions() as session:
        rate = records.badge_rate(
            session.connection(), team=team, now=datetime.now(UTC), tz=ZoneInfo(model.timezone)
        )
    svg = render(rate).encode()
    response = Response(svg, mimetype="image/svg+xml")
    response.headers["Cache-Control"] = f"public, max-age={MAX_AGE_SECONDS}"
    response.set_etag(hashlib.sha256(svg).hexdigest()[:32])
    # Answers If-None-Match with 304 and no body when the SVG is unchanged.
    return response.make_conditional(request)
