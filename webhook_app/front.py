"""POST /webhooks/github and /webhooks/jira served straight from WSGI, in front of Flask.

Why: Flask's request context (a URL adapter bound to the request, the app context, the session
cookie opened and saved, the after-request hooks) cost a webhook request about as much CPU as
the floor's whole request (bench/load.py), and a webhook uses none of it: no session, no URL
parameters, no templates. Here a webhook gets a plain werkzeug Request, its route's answer is
written as Flask's jsonify writes it, and its outcome is counted for /metrics once the answer
is sent. Every other request, and any other method on these paths (405), goes to Flask.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from flask import Blueprint, Flask, current_app, jsonify, request
from redis.exceptions import RedisError
from werkzeug.exceptions import InternalServerError
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wrappers import Request

from trackrecord.logs import get_logger
from webhook_app import github, jira, metrics
from webhook_app.errors import Rejected
from webhook_app.services import EXTENSION, Services
from workers import observe

log = get_logger("webhook_app.metrics")

ROUTES = {"/webhooks/github": ("github", github.receive), "/webhooks/jira": ("jira", jira.receive)}


@dataclass(slots=True)
class Call:
    """One webhook request as its route sees it."""

    request: Request
    svc: Services
    source: str
    event: str | None = None  # as far as the route has read it, for /metrics
    counted: bool = False  # counted in Redis already (with its job's enqueue)


class WebhookFront:
    def __init__(self, app: Flask, wsgi_app):
        self.app = app
        self.next = wsgi_app
        self.svc: Services = app.extensions[EXTENSION]

    def __call__(self, environ, start_response):
        route = ROUTES.get(environ.get("PATH_INFO"))
        if route is None or environ.get("REQUEST_METHOD") != "POST":
            return self.next(environ, start_response)
        source, receive = route
        call = Call(Request(environ), self.svc, source)
        status, body = _answer(self.app, call, receive, environ)
        # Flask's jsonify, outside debug mode: sorted keys, compact, ASCII, a closing newline.
        data = (json.dumps(body, sort_keys=True, separators=(",", ":")) + "\n").encode()
        start_response(
            f"{status} {HTTP_STATUS_CODES[status].upper()}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
        )
        if call.counted:
            return [data]
        return _Counting(data, self.svc, metrics.webhook_labels(source, call.event, status, body))


def _answer(app: Flask, call: Call, receive, environ) -> tuple[int, dict]:
    try:
        return receive(call)
    except Rejected as exc:
        return exc.status, exc.body()
    except Exception:
        propagate = app.config["PROPAGATE_EXCEPTIONS"]
        if propagate or (propagate is None and (app.testing or app.debug)):
            raise
        # As Flask logs and answers an unexpected error (webhook_app.errors).
        app.logger.error(f"Exception on {environ.get('PATH_INFO')} [POST]", exc_info=True)
        return 500, {"error": "internal_server_error", "message": InternalServerError.description}


class _Counting:
    """The answer's body; once the server has sent it (close), the webhook's count for
    /metrics: the sender does not wait on it."""

    def __init__(self, data: bytes, svc: Services, labels):
        self.data, self.svc, self.labels = data, svc, labels

    def __iter__(self):
        yield self.data

    def close(self) -> None:
        if self.labels is None:
            return
        try:
            observe.count_received(self.svc.redis(), *self.labels)
        except (RedisError, OSError) as exc:
            log.warning("metrics.count_failed", error=type(exc).__name__)


# The same routes in Flask's URL map: another method on these paths is answered 405, and an app
# reached without its front (its wsgi_app replaced after create_app) still serves them alike.
bp = Blueprint("webhooks", __name__)


@bp.post("/webhooks/github", endpoint="github")
@bp.post("/webhooks/jira", endpoint="jira")
def through_flask():
    source, receive = ROUTES[request.path]
    svc = current_app.extensions[EXTENSION]
    call = Call(request._get_current_object(), svc, source)
    status, body = _answer(current_app, call, receive, request.environ)
    response = jsonify(body)
    response.status_code = status
    if not call.counted:
        labels = metrics.webhook_labels(source, call.event, status, body)
        response.call_on_close(_Counting(b"", svc, labels).close)
    return response


def install(app: Flask) -> None:
    """Put the front before the app's WSGI callable (and any middleware already there)."""
    app.wsgi_app = WebhookFront(app, app.wsgi_app)
