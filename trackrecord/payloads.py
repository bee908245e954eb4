"""Decoding a stored webhook body, shared by the web layer (to check it) and the worker."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

FORM = "application/x-www-form-urlencoded"


class PayloadError(ValueError):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def json_bytes(body: bytes, mimetype: str) -> bytes:
    """The JSON document inside a body. GitHub's form encoding puts it in a `payload` field;
    the signature covers the raw body either way."""
    if mimetype != FORM:
        return body
    try:
        fields = parse_qs(body.decode("utf-8"), strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        raise PayloadError("malformed_form", "form body cannot be decoded") from None
    if "payload" not in fields:
        raise PayloadError("malformed_form", "form body has no 'payload' field")
    return fields["payload"][0].encode("utf-8")


def document(raw: bytes) -> dict:
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError("malformed_json", f"body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise PayloadError("malformed_json", "body must be a JSON object")
    return doc


def mimetype_of(headers: dict[str, str]) -> str:
    for key, value in headers.items():
        if key.lower() == "content-type":
            return value.split(";", 1)[0].strip().lower()
    return "application/json"


def decode(body: bytes, headers: dict[str, str]) -> dict:
    return document(json_bytes(body, mimetype_of(headers)))
