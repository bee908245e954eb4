"""webhook_app.front serves the webhook POSTs before Flask: its answers are the ones Flask's own
route gives (status, body bytes, content type), an unexpected error is a JSON 500 without a
traceback, and serve's access line, written straight to its stream, still hides query strings."""

from __future__ import annotations

import io
import logging
from datetime import timedelta
from types import SimpleNamespace

from werkzeug.test import Client

from cli.processes import _gunicorn_logger_class
from tests.helpers import fixture_bytes, github_headers
from webhook_app import intake_store


def both(app, path: str, body: bytes, headers: dict):
    """The answer through the front, and through Flask alone (the front's next app)."""
    front = Client(app.wsgi_app).post(path, data=body, headers=headers)
    flask_only = Client(app.wsgi_app.next).post(path, data=body, headers=headers)
    return front, flask_only


def test_the_front_answers_as_flasks_route_does(app):
    body = fixture_bytes("github/issues.opened.json")
    cases = [
        github_headers("issues", body, delivery="same-1", secret="wrong"),  # 401
        {**github_headers("issues", body, delivery="same-2"), "Content-Type": "text/plain"},
        github_headers("ping", body, delivery="same-3"),  # 200 pong
        github_headers("issues", body, delivery="same-4"),  # 202 queued, then 200 duplicate
    ]
    for headers in cases:
        front, flask_only = both(app, "/webhooks/github", body, headers)
        assert front.status_code == flask_only.status_code or (
            (front.status_code, flask_only.status_code) == (202, 200)
        )
        if front.status_code != 202:
            assert front.data == flask_only.data
        assert front.headers["Content-Type"] == flask_only.headers["Content-Type"]
        assert int(front.headers["Content-Length"]) == len(front.data)
    assert front.get_json() == {"delivery": "same-4", "status": "queued"}
    assert flask_only.get_json() == {"delivery": "same-4", "status": "duplicate"}
    assert Client(app.wsgi_app).get("/webhooks/github").status_code == 405


def test_an_unexpected_error_is_a_json_500(app, monkeypatch, caplog):
    app.config["TESTING"] = False

    def broken(*args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(intake_store, "accept", broken)
    body = fixture_bytes("github/issues.opened.json")
    with caplog.at_level(logging.ERROR):
        resp = app.test_client().post(
            "/webhooks/github", data=body, headers=github_headers("issues", body)
        )
    assert resp.status_code == 500
    assert resp.get_json()["error"] == "internal_server_error"
    assert b"a bug" not in resp.data and b"Traceback" not in resp.data
    assert "Exception on /webhooks/github [POST]" in caplog.text


def test_the_access_line_hides_a_query_string_decoded_into_the_path():
    from gunicorn.config import Config

    from cli.processes import ACCESS_LOG_FORMAT

    cfg = Config()
    cfg.set("accesslog", "-")
    cfg.set("access_log_format", ACCESS_LOG_FORMAT)
    logger = _gunicorn_logger_class()(cfg)
    stream = io.StringIO()
    for handler in logger.access_log.handlers:
        handler.setStream(stream)
    environ = {
        "REMOTE_ADDR": "127.0.0.1",
        "REQUEST_METHOD": "GET",
        # /x%3Ftoken=SECRET123 on the wire: PATH_INFO holds the decoded "?".
        "PATH_INFO": "/x?token=SECRET123",
        "SERVER_PROTOCOL": "HTTP/1.1",
    }
    resp = SimpleNamespace(status="404 NOT FOUND", sent=12)
    logger.access(resp, None, environ, timedelta(milliseconds=3))
    line = stream.getvalue()
    assert line.endswith("\n") and '"GET /x HTTP/1.1" 404 12 0.003000' in line
    assert "SECRET123" not in line
