"""Errors as JSON: every route, the webhooks and the API alike, answers a failure with
`{"error": code, "message": ...}` and its status, so a client reads one error shape."""

from __future__ import annotations

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException


class Rejected(Exception):
    """A bad request: a status, a stable error code and a sentence for the sender."""

    def __init__(self, status: int, code: str, message: str, **extra):
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra

    def body(self) -> dict:
        return {"error": self.code, "message": self.message, **self.extra}

    def response(self):
        return jsonify(self.body()), self.status


def _http_error(exc: HTTPException):
    # 404/405 and friends answer in JSON too, with the exception's headers (a 405's `Allow`,
    # which RFC 9110 requires) other than its HTML Content-Type.
    name = (exc.name or "error").lower().replace(" ", "_")
    headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
    return jsonify(error=name, message=exc.description), exc.code, headers


def init_app(app: Flask) -> None:
    app.register_error_handler(Rejected, lambda exc: exc.response())
    app.register_error_handler(HTTPException, _http_error)
