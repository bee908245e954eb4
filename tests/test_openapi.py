"""The JSON API's OpenAPI document (issue 11, "Proof"), and schemathesis fuzzing from it.

The document is served without a token, is valid OpenAPI 3.1, and has an operation for every
/api/v1 route of the app (a new route without one fails here) and no operation for a route the
app lacks. Then every operation is fuzzed against the app, on SQLite and PostgreSQL, holding two
clients' ledgers and reports: positive and negative data (hostile query strings, odd names),
with the acme client's token, the admin token and none. Each answer must be no 5xx, a
documented status with a documented content type, headers and body schema (the schemas are
closed, so an undocumented field fails too). With acme's token, no answer names anything of
globex's (its client, team, items, scopes or reports) unless the request itself did, and every
globex name in a path answers 404. The badge is public by design (README badges send no token)
and names nothing of its team, so only its body is checked.

Bounded and reproducible: few examples per operation, derandomized, no example database.
"""

from __future__ import annotations

import copy
import os
import re
from datetime import UTC, datetime
from itertools import product
from urllib.parse import unquote

import jsonschema_rs
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ledger import scope_titles
from ledger.report_rows import ReportFile, ReportSend
from tests.conftest import CONFIG_TOML
from tests.helpers import CLIENT_TOKEN
from tests.ledger_fixture import LEDGER, at, insert_ledger, row
from trackrecord.db import session_factory

ADMIN_TOKEN = "admin-token-for-openapi"
GLOBEX_TOKEN = "globex-token-for-openapi"
# Every name of globex's holds this marker, so one search finds any of them in an answer.
MARK = "globex"
GLOBEX = f"""
[[clients]]
name = "{MARK}"
token_env = "GLOBEX_API_TOKEN"

[[clients.teams]]
name = "{MARK}-ops"
jira = ["GLX"]
"""
NAMES = {"acme": {"team": ["platform", "web"], "client": ["acme"]},
         MARK: {"team": [f"{MARK}-ops"], "client": [MARK]}}  # fmt: skip
# Every name in a path the fuzz also tries: both clients' (to find a leak), and a stored
# report and one built on its first request.
KNOWN = {
    "team": [*NAMES["acme"]["team"], *NAMES[MARK]["team"]],
    "client": [*NAMES["acme"]["client"], *NAMES[MARK]["client"]],
    "name": ["2024-06.json", "2024-05.md"],
}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
# Per operation, generation mode and token; more for a longer hunt, e.g. 500.
EXAMPLES = int(os.environ.get("TRACKRECORD_FUZZ_EXAMPLES", "30"))


@pytest.fixture
def config_path(tmp_path):
    path = tmp_path / "trackrecord.toml"
    path.write_text(CONFIG_TOML + GLOBEX)
    return path


def _globex(key, outcome, promised=None, **kw) -> dict:
    return {**row(f"{MARK}-{key}", outcome, promised, team=f"{MARK}-ops", **kw), "client": MARK}


@pytest.fixture
def two_clients(app, env, monkeypatch):
    """acme's ledger (tests/ledger_fixture.py) and globex's, their scope titles and reports."""
    monkeypatch.setenv("TRACKRECORD_ADMIN_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("GLOBEX_API_TOKEN", GLOBEX_TOKEN)
    today = datetime.now(UTC)
    globex = [
        _globex("1", "early", (6, 10), made=at(6, 1), delivered=at(6, 2), scope=f"{MARK}-v1"),
        _globex("2", "late", (6, 12), made=at(6, 1), delivered=at(6, 20), slip=8),
        _globex("3", "pending", today.date(), made=today, scope=f"{MARK}-v1"),
        _globex("4", "missed", (6, 14), made=at(6, 1), settled=at(6, 15), excluded=True),
    ]
    insert_ledger(env["DATABASE_URL"], [*LEDGER, *globex])
    with session_factory(env["DATABASE_URL"])() as s, s.begin():
        scope_titles.remember(s, {"v1": "Release 1", f"{MARK}-v1": f"{MARK} secret release"})
        for client in ("acme", MARK):
            s.add(ReportFile(client=client, month="2024-06", format="json", content=b"{}"))
            s.add(ReportSend(client=client, month="2024-06", channel="github",
                             target=f"{client}-org/reports", status="sent", attempts=1,
                             external_id="7", sent_at=at(7, 1)))  # fmt: skip
    return app


@pytest.fixture
def schema(two_clients):
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", two_clients)


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def test_the_document_is_served_without_a_token_and_is_valid(client, schema):
    answer = client.get("/api/v1/openapi.json")
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    raw = answer.get_json()
    assert raw["openapi"].startswith("3.1")
    schema.validate()  # the OpenAPI 3.1 meta-schema; raises on an invalid document
    # The validation can fail: a parameter in no known place is caught.
    broken = copy.deepcopy(raw)
    broken["paths"]["/api/v1/teams"]["get"]["parameters"] = [{"name": "x", "in": "nowhere"}]
    with pytest.raises(jsonschema_rs.ValidationError):
        schemathesis.openapi.from_dict(broken).validate()


def test_every_api_route_is_documented_and_nothing_else(app, schema):
    documented = {(path, method.upper()) for path, ops in schema.raw_schema["paths"].items()
                  for method in ops}  # fmt: skip
    routes = {
        (_openapi_path(rule.rule), method)
        for rule in app.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    api = {r for r in routes if r[0].startswith("/api/v1/")}
    assert api - documented == set(), "an /api/v1 route has no operation in webhook_app/openapi.py"
    assert documented - routes == set(), "the document names a route the app does not have"
    for path in ("/badges/{team}.svg", "/healthz", "/readyz", "/reports/{client}/{name}"):
        assert (path, "GET") in documented


def test_an_undeclared_method_answers_405_with_allow(client, schema):
    """What schemathesis's `unsupported_method` check asks (RFC 9110): the JSON 405 keeps the
    `Allow` header that names the documented method."""
    for path in schema.raw_schema["paths"]:
        url = re.sub(r"{(\w+)}", lambda m: KNOWN[m[1]][-1], path)
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            answer = client.open(url, method=method)
            assert answer.status_code == 405, (method, url)
            assert answer.get_json()["error"] == "method_not_allowed"
            assert "GET" in answer.headers["Allow"].split(", "), (method, url)


def _strategies(operation, mode: GenerationMode, auth: dict | None):
    """Generated names, and known ones in the path (a random name is almost never real): each
    known value alone, and every combination of them, each with a generated rest. The token is
    a fixed header, so negative data negates the request, not the token."""
    keys = [p.name for p in operation.path_parameters]
    fixed = [{key: value} for key in keys for value in KNOWN.get(key, [])]
    if len(keys) > 1:
        combos = product(*(KNOWN[k] for k in keys))
        fixed += [dict(zip(keys, combo, strict=True)) for combo in combos]

    def cases(**given):
        return operation.as_strategy(generation_mode=mode, headers=auth, **given)

    found = [cases(), *(cases(path_parameters=f) for f in fixed)]
    if {"from", "to"} <= {p.name for p in operation.query}:
        # The period of the ledgers' rows too, so that records and pages hold real rows.
        june = {"from": "2024-06-01", "to": "2024-06-30"}
        found += [cases(path_parameters=f, query=june) for f in fixed]
    return st.one_of(found)


def _acme_sees_nothing_of_globex(case, response) -> None:
    asked = unquote(response.request.url)
    body = response.content.decode("utf-8", "replace")
    if MARK not in asked:
        assert MARK not in body.lower(), f"{case.operation.label} {asked} names {MARK}: {body}"
    signed = response.request.headers.get("Authorization") == f"Bearer {CLIENT_TOKEN}"
    hidden = set(NAMES[MARK]["team"] + NAMES[MARK]["client"])
    named = hidden & set((case.path_parameters or {}).values())
    if signed and named and not case.operation.path.startswith("/badges/"):
        assert response.status_code == 404, f"{asked} answered {response.status_code}"


def _negatable(operation) -> bool:
    """Whether negative data can be made: a query string, or a path name with a pattern (a name
    of one character or more has no wrong value a URL can carry)."""
    params = operation.definition.raw.get("parameters", [])
    return any(p["in"] == "query" or "pattern" in p["schema"] for p in params)


def _fuzz(schema, token: str | None, modes=(GenerationMode.POSITIVE, GenerationMode.NEGATIVE)):
    auth = {"Authorization": f"Bearer {token}"} if token else None
    statuses: dict[str, set[int]] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in modes if _negatable(operation) else modes[:1]:

            @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck))  # fmt: skip
            @given(case=_strategies(operation, mode, auth))
            def run(case):
                response = case.call_and_validate(checks=CHECKS)
                statuses.setdefault(case.operation.label, set()).add(response.status_code)
                if token != ADMIN_TOKEN:
                    _acme_sees_nothing_of_globex(case, response)

            run()
    return statuses


def test_fuzz_with_a_client_token(schema):
    statuses = _fuzz(schema, CLIENT_TOKEN)
    # The fuzz reached real answers, not only refusals.
    for label, seen in statuses.items():
        assert 200 in seen, (label, seen)
    assert 404 in statuses["GET /api/v1/teams/{team}/track-record"]


def test_fuzz_with_the_admin_token(schema):
    statuses = _fuzz(schema, ADMIN_TOKEN)
    assert all(200 in seen for seen in statuses.values()), statuses


def test_fuzz_without_a_token(schema):
    statuses = _fuzz(schema, None, modes=(GenerationMode.POSITIVE,))
    assert statuses["GET /api/v1/teams"] == {401}
