"""Decoding a stored webhook body, shared by the web layer (to check it) and the worker.

Decoding is bounded and total: whatever the bytes, the answer is a dict or a PayloadError with
a code the web layer answers as a 400, never another exception. The bounds are far above what
GitHub and Jira send (their payloads nest about ten levels and carry ids of under 20 digits),
and each one stops a body that would otherwise fail later, where it can only be retried:
- nesting: the C parser recurses once per level, so a deep body raises RecursionError at a
  depth that depends on the caller's own stack; a fixed limit gives one verdict everywhere;
- integers: converting a long digit string is quadratic (CPython caps it at 4,300 digits with
  a ValueError, unless someone lifted the cap process-wide);
- NaN, Infinity and numbers that overflow a float are not JSON (RFC 8259, section 6), and
  PostgreSQL's json type refuses them when the ledger stores a value;
- text must be UTF-8 (RFC 8259, section 8.1) and must not hold a lone surrogate (an escape
  such as "\\ud800" with no partner): neither UTF-8 nor any database can store one (RFC 7493,
  section 2.1, I-JSON).
"""

from __future__ import annotations

import json
import math
import re
from urllib.parse import parse_qs

FORM = "application/x-www-form-urlencoded"

MAX_DEPTH = 128
MAX_NUMBER_CHARS = 100
MAX_FORM_FIELDS = 100

# A surrogate escape anywhere in the text; only then can a decoded string hold a lone one.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


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
        fields = parse_qs(
            body.decode("utf-8"),
            strict_parsing=True,
            errors="strict",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise PayloadError("malformed_form", "form body cannot be decoded") from None
    if "payload" not in fields:
        raise PayloadError("malformed_form", "form body has no 'payload' field")
    return fields["payload"][0].encode("utf-8")


def _int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise ValueError(f"a number has more than {MAX_NUMBER_CHARS} digits")
    return int(text)


def _float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise ValueError(f"a number has more than {MAX_NUMBER_CHARS} characters")
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text} does not fit a float")
    return value


def _constant(name: str):
    raise ValueError(f"{name} is not JSON")


def document(raw: bytes) -> dict:
    try:
        # utf-8-sig: a leading byte order mark is dropped, as json.loads did for bytes.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PayloadError("malformed_json", f"body is not UTF-8: {exc.reason}") from None
    try:
        doc = json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except RecursionError:
        raise PayloadError("malformed_json", f"body nests deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # json.JSONDecodeError is one
        raise PayloadError("malformed_json", f"body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise PayloadError("malformed_json", "body must be a JSON object")
    surrogates = _SURROGATE_ESCAPE.search(text) is not None
    # Fewer brackets in the whole text than MAX_DEPTH cannot nest deeper than it: the walk is
    # needed only when the text could break a bound (a count in C is cheap; the walk is not).
    if surrogates or text.count("{") + text.count("[") > MAX_DEPTH:
        _check_shape(doc, text_may_hold_surrogates=surrogates)
    return doc


def _check_shape(doc: dict, *, text_may_hold_surrogates: bool) -> None:
    """Nesting within MAX_DEPTH and, when the text had surrogate escapes, no lone surrogate in
    any key or string. Iterative, so the check itself never recurses."""
    stack: list[tuple[dict | list, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise PayloadError("malformed_json", f"body nests deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            if text_may_hold_surrogates and any(_LONE_SURROGATE.search(k) for k in node):
                raise _lone_surrogate()
            children = node.values()
        else:
            children = node
        for child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
            elif (
                text_may_hold_surrogates
                and isinstance(child, str)
                and _LONE_SURROGATE.search(child)
            ):
                raise _lone_surrogate()


def _lone_surrogate() -> PayloadError:
    return PayloadError(
        "malformed_json", "body holds a lone surrogate escape (\\ud800-\\udfff): not Unicode text"
    )


def mimetype_of(headers: dict[str, str]) -> str:
    for key, value in headers.items():
        if key.lower() == "content-type":
            return value.split(";", 1)[0].strip().lower()
    return "application/json"


def decode(body: bytes, headers: dict[str, str]) -> dict:
    return document(json_bytes(body, mimetype_of(headers)))
