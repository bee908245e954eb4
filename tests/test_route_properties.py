"""Property tests of both webhook routes: whatever the body and the headers, signed or not, the
answer is never a 5xx, and a request that is not accepted stores nothing (issue 8, item 1).

The signature is checked over the raw bytes before anything parses them, so an unsigned body
never reaches the parser; a signed one is parsed with bounds, and every failure is a 4xx.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from sqlalchemy import func, select

from tests.helpers import GITHUB_SECRET, JIRA_SECRET, fixture_bytes
from trackrecord.db import session_factory
from trackrecord.models import Delivery
from webhook_app import create_app
from webhook_app.signatures import sign

PROPERTY = hsettings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# The bodies the issue reported as 500s before the signature was checked first.
DEEP = b"[" * 1000 + b"]" * 1000
BIG_INT = b'{"a": ' + b"9" * 5000 + b"}"
FIELDS_NOT_AN_OBJECT = b'{"issue":{"fields":"x"}}'
NASTY = [DEEP, BIG_INT, FIELDS_NOT_AN_OBJECT, b"{" * 100_000, b'{"a": 1e999}', b'"\\ud800"']

# Header text as a sender could put it on the wire: printable ASCII and Latin-1, no line breaks.
header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_categories=["Cc"]),
    max_size=40,
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=25,
)


def maybe(values: st.SearchStrategy) -> st.SearchStrategy:
    """A value the route reads, or anything at all in its place."""
    return values | json_values


# Documents shaped like what each route reads (repository, issue key, project), so examples
# reach the checks after the signature, and not only the parser.
REPOS = [
    "Codertocat/Hello-World",
    "acme-corp/own-secret",
    "stranger/repo",
    "codertocat/hello-world",
]
github_docs = st.fixed_dictionaries(
    {
        "action": maybe(st.sampled_from(["opened", "closed", "edited", "milestoned", "deleted"])),
        "repository": maybe(st.fixed_dictionaries({"full_name": maybe(st.sampled_from(REPOS))})),
    },
    optional={
        "issue": json_values,
        "pull_request": json_values,
        "milestone": json_values,
        "sender": json_values,
    },
)
JIRA_EVENTS = [
    "jira:issue_created",
    "jira:issue_updated",
    "jira:issue_deleted",
    "comment_created",
    "jira:version_updated",
    "sprint_started",
    "sprint_updated",
    "sprint_created",
    "board_created",
]
ISSUE_KEYS = ["TES-1", "KT-22", "OTHER-3", "TES", "-1", "tes-5"]
jira_issue = st.fixed_dictionaries(
    {
        "key": maybe(st.sampled_from(ISSUE_KEYS)),
        "fields": maybe(
            st.fixed_dictionaries(
                {
                    "project": maybe(
                        st.fixed_dictionaries({"key": maybe(st.sampled_from(["TES", "KT", "X"]))})
                    )
                }
            )
        ),
    }
)
jira_docs = st.fixed_dictionaries(
    {"webhookEvent": maybe(st.sampled_from(JIRA_EVENTS))},
    optional={
        "issue": maybe(jira_issue),
        "issue_event_type_name": json_values,
        "version": json_values,
        "sprint": json_values,
        "timestamp": json_values,
    },
)


def encoded(docs: st.SearchStrategy) -> st.SearchStrategy:
    return docs.map(lambda d: json.dumps(d).encode())


def bodies(docs: st.SearchStrategy, fixture: bytes) -> st.SearchStrategy:
    # Weighted towards documents shaped like the route's, which get past the parser.
    return st.one_of(
        st.binary(max_size=300),
        encoded(json_values),
        encoded(docs),
        encoded(docs),
        encoded(docs),
        st.sampled_from(NASTY + [fixture]),
        st.binary(max_size=40).map(lambda tail: fixture + tail),
    )


def signatures_for(secrets: list[str]) -> st.SearchStrategy:
    """How to sign: with one of the configured secrets (most often), wrongly, or not at all."""
    signed = st.sampled_from([("secret", s) for s in secrets])
    return st.one_of(
        signed,
        signed,
        signed,
        st.just(("header", "sha256=0")),
        header_text.map(lambda text: ("header", text)),
        st.just(("none", None)),
    )


CONTENT_TYPE_VALUES = [
    "application/json",
    "application/json; charset=UTF-8",
    "application/x-www-form-urlencoded",
    "text/plain",
    None,
]


# Mostly a type the route accepts, so examples get as far as the signature.
CONTENT_TYPES = st.one_of(
    st.just("application/json"),
    st.just("application/json"),
    st.sampled_from(CONTENT_TYPE_VALUES),
)
DELIVERIES = st.one_of(st.uuids().map(str), st.uuids().map(str), st.none(), header_text)


def stored(settings) -> int:
    with session_factory(settings.database_url)() as s:
        return s.scalar(select(func.count()).select_from(Delivery))


def send(client, route: str, body: bytes, headers: dict, settings):
    before = stored(settings)
    resp = client.post(
        route, data=body, headers={k: v for k, v in headers.items() if v is not None}
    )
    assert resp.status_code < 500, (resp.status_code, resp.get_data()[:300])
    assert resp.is_json
    if currently_in_test_context():  # the answers' spread, in --hypothesis-show-statistics
        event(f"{resp.status_code} {resp.json.get('error') or resp.json.get('status')}")
    after = stored(settings)
    if resp.status_code == 202:
        assert after == before + 1, resp.json
    else:
        # Refused, ignored, a ping or a duplicate: nothing is written.
        assert after == before, (resp.status_code, resp.json)
    return resp


def signature_value(mode: tuple[str, str | None], body: bytes) -> str | None:
    kind, value = mode
    if kind == "secret":
        return sign(value, body)
    return value


def as_form(body: bytes, content_type: str | None) -> bytes:
    # Half the form-typed examples carry their body the way GitHub's form encoding does.
    if content_type == "application/x-www-form-urlencoded" and body[:1] == b"{":
        return urlencode({"payload": body.decode("utf-8", "replace")}).encode()
    return body


@PROPERTY
@given(
    body=bodies(github_docs, fixture_bytes("github/issues.opened.json")),
    signing=signatures_for([GITHUB_SECRET, "own-secret"]),
    event=st.one_of(
        st.sampled_from(["issues", "pull_request", "milestone", "issue_comment", "ping"]),
        st.sampled_from(["issues", "pull_request", "milestone", "issue_comment"]),
        header_text,
    ),
    delivery=DELIVERIES,
    content_type=CONTENT_TYPES,
    form=st.booleans(),
)
def test_github_route_never_fails_and_never_half_writes(
    client, settings, body, signing, event, delivery, content_type, form
):
    if form:
        body = as_form(body, content_type)
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": signature_value(signing, body),
        "Content-Type": content_type,
    }
    resp = send(client, "/webhooks/github", body, headers, settings)
    if signing[0] != "secret" and resp.status_code not in (400, 413, 415):
        # Not signed with a configured secret: refused before the body is read.
        assert resp.status_code == 401, resp.json


@pytest.fixture(params=["signed", "unsigned allowed"])
def jira_client(request, settings, monkeypatch):
    if request.param == "signed":
        return create_app(settings).test_client(), [JIRA_SECRET]
    # A Jira that cannot sign: no Jira secret at all, and unsigned deliveries accepted.
    monkeypatch.delenv("JIRA_WEBHOOK_SECRET")
    allowed = settings.__class__(**{**settings.__dict__, "jira_allow_unsigned": True})
    return create_app(allowed).test_client(), []


@PROPERTY
@given(
    body=bodies(jira_docs, fixture_bytes("jira/jira.issue_created.json")),
    signing=st.data(),
    delivery=DELIVERIES,
    content_type=CONTENT_TYPES,
)
def test_jira_route_never_fails_and_never_half_writes(
    jira_client, settings, body, signing, delivery, content_type
):
    client, secrets = jira_client
    mode = signing.draw(signatures_for(secrets) if secrets else signatures_for(["unused"]))
    headers = {
        "X-Atlassian-Webhook-Identifier": delivery,
        "X-Hub-Signature": signature_value(mode, body),
        "Content-Type": content_type,
    }
    resp = send(client, "/webhooks/jira", body, headers, settings)
    if secrets and mode[0] != "secret" and resp.status_code not in (400, 413, 415):
        assert resp.status_code == 401, resp.json


@pytest.mark.parametrize(
    "body", [DEEP, BIG_INT, FIELDS_NOT_AN_OBJECT], ids=["deep", "int", "fields"]
)
@pytest.mark.parametrize("route", ["/webhooks/github", "/webhooks/jira"])
def test_the_reported_bodies_are_refused_unsigned_and_answered_4xx_signed(
    client, settings, route, body
):
    """Issue 8's examples: with `sha256=0` they never reach the parser (401); signed, the
    bounded parser refuses the two that are not JSON it accepts (400), and the third is read
    without a fault."""
    github = route.endswith("github")
    name = "X-Hub-Signature-256" if github else "X-Hub-Signature"
    base = {"Content-Type": "application/json", "X-Atlassian-Webhook-Identifier": "d-1"}
    if github:
        base.update({"X-GitHub-Event": "issues", "X-GitHub-Delivery": "d-1"})
    unsigned = send(client, route, body, {**base, name: "sha256=0"}, settings)
    assert (unsigned.status_code, unsigned.json["error"]) == (401, "bad_signature")
    secret = GITHUB_SECRET if github else JIRA_SECRET
    signed = send(client, route, body, {**base, name: sign(secret, body)}, settings)
    if body is FIELDS_NOT_AN_OBJECT:
        # Valid JSON: GitHub's route finds no listed repository in it (200 ignored), Jira's no
        # webhookEvent (400).
        assert signed.status_code == (200 if github else 400), signed.json
    else:
        assert (signed.status_code, signed.json["error"]) == (400, "malformed_json")
