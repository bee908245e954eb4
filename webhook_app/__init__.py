"""The web layer: verify a webhook, store it, enqueue it, answer. Nothing slower happens here."""

from __future__ import annotations

import os

import structlog
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from ledger import trust
from trackrecord.config import Settings
from trackrecord.db import session_factory
from trackrecord.logs import configure
from webhook_app.services import EXTENSION, Services

PROXY_HOPS_ENV = "TRACKRECORD_PROXY_HOPS"


def create_app(settings: Settings | None = None) -> Flask:
    from webhook_app import (
        api,
        badges,
        errors,
        front,
        health,
        metrics,
        openapi,
        pages,
        pages_auth,
        pages_operator,
        reports,
    )

    if not structlog.is_configured():
        configure()
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    trust.beta()  # imported now, not by the first request that scores a team
    app.extensions[EXTENSION] = Services(settings, session_factory(settings.database_url))

    for bp in (health.bp, front.bp, api.bp, badges.bp, metrics.bp, reports.bp):
        app.register_blueprint(bp)
    app.register_blueprint(openapi.bp)  # GET /api/v1/openapi.json (issue 11)
    # The pages (issue 12): session cookie and secret key, then their routes.
    pages_auth.init_app(app)
    for bp in (pages.bp, pages_operator.bp):
        app.register_blueprint(bp)
    if hops := int(os.environ.get(PROXY_HOPS_ENV, "0") or 0):
        # Trust X-Forwarded-Proto/-For/-Host from that many proxies only: then a request that
        # reached the proxy over HTTPS gets its `Secure` session cookie.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    errors.init_app(app)
    # Last, so that the webhooks' POSTs are served before any middleware (webhook_app.front).
    front.install(app)
    return app
