"""The web layer: verify a webhook, store it, enqueue it, answer. Nothing slower happens here."""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog
from flask import Flask, jsonify
from redis import Redis
from rq import Queue
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.exceptions import HTTPException

from trackrecord.config import Settings
from trackrecord.db import session_factory
from trackrecord.logs import configure
from trackrecord.queue import get_queue, redis_from_url


@dataclass
class Services:
    """What the views need, built once per process and reachable as app.extensions."""

    settings: Settings
    sessions: sessionmaker[Session]
    _redis: Redis | None = field(default=None, repr=False)

    def redis(self) -> Redis:
        if self._redis is None:
            self._redis = redis_from_url(self.settings.redis_url, fast=True)
        return self._redis

    def queue(self) -> Queue:
        return get_queue(self.redis(), self.settings.queue_name)


def create_app(settings: Settings | None = None) -> Flask:
    from webhook_app import api, badges, github, health, intake, jira

    if not structlog.is_configured():
        configure()
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.extensions["trackrecord"] = Services(settings, session_factory(settings.database_url))

    for bp in (health.bp, github.bp, jira.bp, api.bp, badges.bp):
        app.register_blueprint(bp)

    app.register_error_handler(intake.Rejected, lambda exc: exc.response())

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        # 404/405 and friends answer in JSON too, so every client reads one error shape.
        name = (exc.name or "error").lower().replace(" ", "_")
        return jsonify(error=name, message=exc.description), exc.code

    return app
