"""The pages people open: the overview (`/`), a team (`/teams/<team>`), a client
(`/clients/<client>`), and signing in and out. Server-rendered, readable without JavaScript.

Thin views: `pages_data` gathers from the ledger, the templates lay it out. Who may see what is
`webhook_app.auth`'s rule (a client sees its own teams; anything else is the same 404 as a name
that exists nowhere); `pages_auth` finds the viewer from the session or a bearer token.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from flask import Blueprint, redirect, render_template, request, url_for
from markupsafe import Markup
from werkzeug.exceptions import HTTPException

from webhook_app import pages_auth, pages_data
from webhook_app.auth import ADMIN, client_for, team_for
from webhook_app.errors import Rejected
from webhook_app.services import services

bp = Blueprint("pages", __name__)


def install(blueprint: Blueprint) -> None:
    """What every page blueprint shares: the CSRF check on POST and errors as HTML pages."""
    blueprint.before_request(pages_auth.check_csrf)
    blueprint.register_error_handler(Rejected, _rejected)
    blueprint.register_error_handler(HTTPException, _http_error)
    blueprint.context_processor(_context)


def _context() -> dict:
    return {
        "csrf_token": pages_auth.csrf_token,
        "csrf_field": pages_auth.CSRF_FIELD,
        "item_label": pages_data.item_label,
        "scope_label": pages_data.scope_label,
        "outcome_words": pages_data.OUTCOME_WORDS,
        "trend_chart": _trend_chart,
        "sparkline": _sparkline,
    }


def _charts():
    """The reports layer's charts (pygal), or None while it is not installed: the pages then
    show the months' table, which every chart carries as its text alternative anyway."""
    try:
        from reports import charts
    except ImportError:
        return None
    return charts


def _trend_chart(months: list[dict], title: str) -> Markup | None:
    charts = _charts()
    return Markup(charts.trend_svg(months, title=title)) if charts else None


def _sparkline(months: list[dict], title: str) -> Markup | None:
    charts = _charts()
    values = [m["on_time_rate"] for m in months]
    if not charts or all(v is None for v in values):
        return None  # nothing due in any month: the cell says so in words
    return Markup(charts.sparkline_svg(values, title=title))


def _rejected(exc: Rejected):
    if exc.status == 401:
        return _signin_redirect()
    return render_template("error.html", status=exc.status, message=exc.message), exc.status


def _http_error(exc: HTTPException):
    page = render_template("error.html", status=exc.code, message=exc.description)
    return page, exc.code


def _signin_redirect():
    if pages_auth.bearer() is not None:
        # A script or a wall screen sent a token that is not (or no longer) valid: say so.
        message = "This token is not valid (any more)."
        return render_template("error.html", status=401, message=message), 401
    return redirect(url_for("pages.signin", next=request.full_path.rstrip("?")))


def viewer():
    """The principal, or a 401 that `_rejected` turns into the sign-in page."""
    who = pages_auth.viewer()
    if who is None:
        raise Rejected(401, "unauthorized", "sign in first")
    return who


def visible_teams(who) -> list:
    config = services().settings.config
    clients = config.clients if who is ADMIN else [config.client(who)]
    return [(client, team) for client in clients if client for team in client.teams]


def _safe_next(target: str | None) -> str:
    # Only a path of this site: never `//evil.example` or `https://evil.example`.
    parts = urlsplit(target or "")
    if not target or parts.scheme or parts.netloc or not target.startswith("/"):
        return url_for("pages.overview")
    return target


@bp.route("/signin", methods=["GET", "POST"])
def signin():
    error, status = None, 200
    if request.method == "POST":
        token = request.form.get("token", "").strip()
        if token and pages_auth.sign_in(token) is not None:
            return redirect(_safe_next(request.form.get("next")), code=303)
        error, status = "That token is not valid. Check it and try again.", 401
    elif pages_auth.viewer() is not None:
        return redirect(_safe_next(request.args.get("next")))
    page = render_template("signin.html", error=error, next=request.values.get("next", ""))
    return page, status


@bp.post("/signout")
def signout():
    pages_auth.sign_out()
    return redirect(url_for("pages.signin"), code=303)


@bp.get("/")
def overview():
    who = viewer()
    with services().sessions() as session:
        conn = session.connection()
        rows = [
            {"client": c.name, **pages_data.team_summary(conn, t)} for c, t in visible_teams(who)
        ]
    clients = sorted({r["client"] for r in rows})
    return render_template("overview.html", who=who, admin=who is ADMIN, rows=rows, clients=clients)


@bp.get("/teams/<team>")
def team(team: str):
    who = viewer()
    model, client = team_for(who, team)
    with services().sessions() as session:
        conn = session.connection()
        summary = pages_data.team_summary(conn, model)
        milestones = pages_data.open_milestones(conn, model)
        deliveries, misses = pages_data.recent_outcomes(conn, model)
    # The public address when configured (TRACKRECORD_PUBLIC_URL, as the comments use), since
    # the snippet is pasted where readers come from elsewhere; else the address asked for.
    public = os.environ.get("TRACKRECORD_PUBLIC_URL", "").rstrip("/")
    badge_path = url_for("badges.badge", team=model.name)
    page_path = url_for("pages.team", team=model.name)
    base = public or request.host_url.rstrip("/")
    badge_url, page_url = base + badge_path, base + page_path
    return render_template(
        "team.html",
        who=who,
        admin=who is ADMIN,
        team=model,
        client=client,
        summary=summary,
        rec=summary["record"],
        milestones=milestones,
        deliveries=deliveries,
        misses=misses,
        exclusions=pages_data.team_exclusions(model),
        badge_url=badge_url,
        embed=f"[![on-time record]({badge_url})]({page_url})",
    )


@bp.get("/clients/<client>")
def client(client: str):
    who = viewer()
    model = client_for(who, client)
    with services().sessions() as session:
        conn = session.connection()
        rows = [{"client": model.name, **pages_data.team_summary(conn, t)} for t in model.teams]
    return render_template(
        "client.html",
        who=who,
        admin=who is ADMIN,
        client=model,
        rows=rows,
        reports=pages_data.report_months(model.name),
    )


install(bp)
