"""The web layer: verify a webhook, store it, enqueue it, answer. Nothing slower happens here."""

from __future__ import annotations

import structlog
from flask import Flask

from trackrecord.config import Settings
from trackrecord.db import session_factory
from trackrecord.logs import configure
from webhook_app.services import EXTENSION, Services


def create_app(settings: Settings | None = None) -> Flask:
    from webhook_app import api, badges, errors, github, health, jira

    if not structlog.is_configured():
        configure()
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.extensions[EXTENSION] = Services(settings, session_factory(settings.database_url))

    for bp in (health.bp, github.bp, jira.bp, api.bp, badges.bp):
        app.register_blueprint(bp)
    errors.init_app(app)
    return app
