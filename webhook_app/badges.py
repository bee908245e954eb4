"""`GET /badges/<team>.svg`: the team's on-time rate over the last 90 days, as a README badge.

The value is the record of the last 90 days (today included) in the words of the API's and the
CLI's `summary` (ledger.record.headline): the rate ("75%", titled "75% on time · 3 of 4 kept"),
or, when nothing in the window is due yet, what will count and when ("next due 15 Oct"), never
a bare "n/a".

Public, with no token: a badge is embedded in READMEs and wikis, where no header can be sent.
It reveals the 90-day on-time rate, rounded to a percent, and its counts, and nothing else. A
team that does not want that public sets `badge = false` in its config. An unknown team and a
team whose badge is off answer the same 404: an SVG that says "no badge" (an <img> shows it
where JSON would be a broken image), byte for byte the same in both cases, so the route tells
no one which teams exist.

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

from ledger import record
from webhook_app.services import services

bp = Blueprint("badges", __name__)

MAX_AGE_SECONDS = 300
LABEL = "on-time"
# Colours of shields.io's palette: the badge reads like the other badges of a README.
COLOURS = ((0.9, "#4c1"), (0.75, "#dfb317"), (0.0, "#e05d44"))
NO_DATA = "#9f9f9f"
NO_BADGE = "no badge"


def _text_width(text: str) -> int:
    # Verdana 11px averages about 7 px a character; exact widths need the font's metrics, and
    # an approximate pad is what shields.io's own fallback does.
    return 7 * len(text) + 10


def render(headline: record.Headline) -> str:
    rate = headline.rate
    colour = NO_DATA if rate is None else next(c for floor, c in COLOURS if rate >= floor)
    return _svg(headline.short, colour, f"{LABEL}, last {record.BADGE_DAYS} days: {headline.words}")


def _svg(text: str, colour: str, words: str) -> str:
    value, title = escape(text), escape(words)
    lw, vw = _text_width(LABEL), _text_width(text)
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


def _no_badge() -> Response:
    # Nothing of the team in it (not even the name asked for): the same bytes for all.
    response = Response(_svg(NO_BADGE, NO_DATA, NO_BADGE), status=404, mimetype="image/svg+xml")
    response.headers["Cache-Control"] = f"public, max-age={MAX_AGE_SECONDS}"
    return response


@bp.get("/badges/<team>.svg")
def badge(team: str):
    model = services().settings.config.team(team)
    if model is None or not model.badge:
        return _no_badge()
    with services().sessions() as session:
        words = record.badge(
            session.connection(), team=team, now=datetime.now(UTC), tz=ZoneInfo(model.timezone)
        )
    svg = render(words).encode()
    response = Response(svg, mimetype="image/svg+xml")
    response.headers["Cache-Control"] = f"public, max-age={MAX_AGE_SECONDS}"
    response.set_etag(hashlib.sha256(svg).hexdigest()[:32])
    # Answers If-None-Match with 304 and no body when the SVG is unchanged.
    return response.make_conditional(request)
