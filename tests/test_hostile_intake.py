"""Hostile input at the webhook routes (issue 8): a signed body that cannot be parsed within
bounds, a value the deliveries table cannot hold, or a body whose framing is broken is a 4xx
that stores nothing. A 5xx would make the sender retry, forever, a delivery that can never be
accepted; 503 stays for the database being down (tests/test_faults.py)."""

from __future__ import annotations

import copy
import json
import socket
import sys

import pytest
from sqlalchemy import func, select

from tests.helpers import github_headers, jira_headers, json_of
from tests.test_e2e import Served
from trackrecord import payloads
from trackrecord.db import session_factory
from trackrecord.models import Delivery

DEEP = b'{"a":' * 1000 + b"1" + b"}" * 1000
HUGE_INT = b'{"action": "opened", "n": ' + b"9" * 5000 + b"}"
HUGE_FLOAT = b'{"action": "opened", "n": 1e999}'
NAN = b'{"action": "opened", "n": NaN}'
NOT_UTF8 = b'{"action": "opened", "title": "\xff\xfe"}'


def stored(settings) -> int:
    with session_factory(settings.database_url)() as s:
        return s.scalar(select(func.count()).select_from(Delivery))


@pytest.mark.parametrize(
    "body",
    [DEEP, HUGE_INT, HUGE_FLOAT, NAN, NOT_UTF8],
    ids=["deep", "int", "float", "nan", "utf8"],
)
def test_signed_bodies_that_do_not_parse_are_400(client, settings, body):
    gh = client.post("/webhooks/github", data=body, headers=github_headers("issues", body))
    jr = client.post("/webhooks/jira", data=body, headers=jira_headers(body))
    assert (gh.status_code, gh.json["error"]) == (400, "malformed_json")
    assert (jr.status_code, jr.json["error"]) == (400, "malformed_json")
    assert stored(settings) == 0


def _issue_body(**changes) -> bytes:
    doc = copy.deepcopy(json_of("github/issues.opened.json"))
    doc.update(changes)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("body", "delivery", "code"),
    [
        (_issue_body(), "x" * 129, "invalid_header"),
        (_issue_body(), "id\u0000", "invalid_header"),
        (_issue_body(), "id\u0007bell", "invalid_header"),
        (_issue_body(action="open\u0000ed"), None, "invalid_field"),
        (_issue_body(action="x" * 65), None, "invalid_field"),
        # A lone surrogate is refused wherever it is in the body: no database can store it,
        # so the worker could never store the item's title or labels either.
        (_issue_body(action="\ud800"), None, "malformed_json"),
        (_issue_body(title="fine \udc00 not"), None, "malformed_json"),
    ],
    ids=["long id", "nul id", "control id", "nul action", "long action", "lone", "lone title"],
)
def test_permanently_bad_github_values_are_400_not_retry(client, settings, body, delivery, code):
    headers = github_headers("issues", body)
    if delivery is not None:
        headers["X-GitHub-Delivery"] = delivery
    resp = client.post("/webhooks/github", data=body, headers=headers)
    assert (resp.status_code, resp.json["error"]) == (400, code), resp.json
    assert stored(settings) == 0


def _jira_body(**changes) -> bytes:
    doc = copy.deepcopy(json_of("jira/jira.issue_updated.resolved.json"))
    doc.update(changes)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("body", "delivery", "code"),
    [
        (_jira_body(), "9" * 129, "invalid_header"),
        (_jira_body(issue_event_type_name="issue_\u0000generic"), None, "invalid_field"),
    ],
    ids=["long id", "nul action"],
)
def test_permanently_bad_jira_values_are_400_not_retry(client, settings, body, delivery, code):
    resp = client.post("/webhooks/jira", data=body, headers=jira_headers(body, delivery))
    assert (resp.status_code, resp.json["error"]) == (400, code), resp.json
    assert stored(settings) == 0


def test_values_at_the_column_limits_are_stored(client, settings):
    body = _issue_body(action="y" * 64)
    headers = github_headers("issues", body, "x" * 128)
    resp = client.post("/webhooks/github", data=body, headers=headers)
    assert resp.status_code == 202, resp.json
    assert stored(settings) == 1


def test_a_header_with_control_characters_is_stored_escaped(client, settings):
    """Headers are kept for replay and debugging, in a JSON column: whatever a sender put in
    one that is not ours to check, it cannot stop the delivery from being stored."""
    body = _issue_body()
    headers = {**github_headers("issues", body, "odd-header"), "X-Debug": "a\u0000b\u0001c"}
    resp = client.post("/webhooks/github", data=body, headers=headers)
    assert resp.status_code == 202, resp.json
    with session_factory(settings.database_url)() as s:
        [row] = s.scalars(select(Delivery))
    assert row.headers["X-Debug"] == "a\\u0000b\\u0001c"


def test_parsing_is_bounded_whatever_the_process_allows():
    # At the limit a body parses; one level more is refused, not left to the recursion limit.
    at_limit = b'{"a":' + b"[" * (payloads.MAX_DEPTH - 1) + b"]" * (payloads.MAX_DEPTH - 1) + b"}"
    assert payloads.document(at_limit)
    deeper = b'{"a":' + b"[" * payloads.MAX_DEPTH + b"]" * payloads.MAX_DEPTH + b"}"
    with pytest.raises(payloads.PayloadError, match="nests deeper"):
        payloads.document(deeper)
    # A process that lifted CPython's cap on digits still refuses a huge integer.
    before = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        with pytest.raises(payloads.PayloadError, match="digits"):
            payloads.document(b'{"n": ' + b"7" * 200_000 + b"}")
    finally:
        sys.set_int_max_str_digits(before)
    # A surrogate pair escaped the way ensure_ascii writes it is an ordinary character.
    assert payloads.document(b'{"t": "\\ud83d\\ude00"}') == {"t": "\U0001f600"}


@pytest.fixture
def served(env, tmp_path):
    server = Served(tmp_path / "serve.log", "--workers", "1").wait_ready()
    yield server
    server.stop()


def _raw_post(port: int, headers: dict[str, str], framed_body: bytes) -> bytes:
    lines = ["POST /webhooks/github HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines += ["Transfer-Encoding: chunked", "Connection: close"]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode() + framed_body
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)  # all of it is sent
        answer = b""
        while len(answer) < 65536:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer


def _chunked(body: bytes) -> bytes:
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)


def test_chunked_bodies_through_the_real_server(served, settings):
    """Gunicorn decodes the chunked framing; a garbled one is the sender's 400, not a 500."""
    body = _issue_body()
    headers = github_headers("issues", body, "chunked-good")
    good = _raw_post(served.port, headers, _chunked(body))
    assert good.startswith(b"HTTP/1.1 202"), good[:200]

    garbled = [
        b"zz\r\nabc\r\n0\r\n\r\n",  # not a hexadecimal size
        b"5\r\nabcdefgh\r\n0\r\n\r\n",  # a chunk longer than its size
        b"5\r\nabc",  # the body stops in the middle of a chunk
    ]
    for framed in garbled:
        answer = _raw_post(served.port, github_headers("issues", body, "chunked-bad"), framed)
        assert answer.startswith(b"HTTP/1.1 400"), (framed, answer[:300])
        assert b'"malformed_body"' in answer or b'"incomplete_body"' in answer, answer
    assert stored(settings) == 1
