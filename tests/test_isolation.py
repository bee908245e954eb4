"""Tenant isolation: one client's webhooks cannot change another client's ledger (issue 8,
item 4; docs/security.md, "Tenant isolation").

Two clients, each with its own GitHub repository and Jira project on the same Jira site, each
signed with its own secret (the global secrets are set too and verify neither). Beta's ledger
is built from its own deliveries; then every reference an acme-signed delivery can carry is
tried, through the Flask intake and a real RQ worker, and beta's rows must be byte-for-byte as
they were. Each attack has a control: the same reference from beta's own side does change the
rows, so the tests cannot pass by the reference never having worked.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from connectors.directory import build_directory
from ledger import store
from ledger.events import DomainEvent, EventKind
from ledger.tables import Commitment, Item, ItemEvent, PromiseChangeRow, ScopeEvent
from ledger.teams import Owner
from tests import ledger_helpers as h
from tests.helpers import GITHUB_SECRET, github_headers, jira_headers
from trackrecord.db import session_factory
from trackrecord.models import Delivery

ISOLATION_TOML = """
[[clients]]
name = "acme"
token_env = "ACME_API_TOKEN"

[[clients.teams]]
name = "acme-team"
github = [{ repo = "acme-org/app", secret_env = "ACME_GITHUB_SECRET" }]
jira = [{ project = "ACME", secret_env = "ACME_JIRA_SECRET" }]

[[clients]]
name = "beta"
token_env = "BETA_API_TOKEN"

[[clients.teams]]
name = "beta-team"
github = [{ repo = "beta-org/app", secret_env = "BETA_GITHUB_SECRET" }]
jira = [{ project = "BETA", secret_env = "BETA_JIRA_SECRET" }]
"""

SECRETS = {
    "ACME_GITHUB_SECRET": "acme-github-secret",
    "ACME_JIRA_SECRET": "acme-jira-secret",
    "BETA_GITHUB_SECRET": "beta-github-secret",
    "BETA_JIRA_SECRET": "beta-jira-secret",
    "BETA_API_TOKEN": "beta-client-token",
}
ACME_GH, BETA_GH = SECRETS["ACME_GITHUB_SECRET"], SECRETS["BETA_GITHUB_SECRET"]
ACME_JIRA, BETA_JIRA = SECRETS["ACME_JIRA_SECRET"], SECRETS["BETA_JIRA_SECRET"]
SITE = "https://some-instance-test.atlassian.net"  # both projects live on the same Jira site
VERSION = {"id": "20000", "name": "beta 2.0", "self": f"{SITE}/rest/api/2/version/20000"}
SPRINT = {
    "id": 77,
    "name": "Beta sprint 77",
    "boardId": 3,
    "self": f"{SITE}/rest/agile/1.0/sprint/77",
}
BETA_ISSUE = "github:beta-org/app#50"


@pytest.fixture
def config_path(tmp_path):
    path = tmp_path / "trackrecord.toml"
    path.write_text(ISOLATION_TOML)
    return path


@pytest.fixture(autouse=True)
def secrets(env, monkeypatch):
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)


# --- deliveries -------------------------------------------------------------------------------


def post_github(client, event: str, doc: dict, secret: str):
    body = json.dumps(doc).encode()
    return client.post(
        "/webhooks/github", data=body, headers=github_headers(event, body, secret=secret)
    )


def post_jira(client, doc: dict, secret: str):
    body = json.dumps(doc).encode()
    return client.post("/webhooks/jira", data=body, headers=jira_headers(body, secret=secret))


def accepted(resp) -> None:
    assert resp.status_code == 202, resp.json
    assert resp.json["status"] == "queued", resp.json


def beta_jira_issue(key: str, **fields) -> dict:
    doc = h.jira_created("2019-02-10T10:00:00+00:00", key=key, due=None)
    doc["issue"]["self"] = f"{SITE}/rest/api/2/issue/{key}"
    doc["issue"]["fields"].update(fields)
    return doc


def seed_beta(client, settings, redis_conn) -> None:
    """Beta's own ledger: an issue promised in a milestone (missed), a Jira issue with a due date
    (missed), one planned into an undated fix version and one into a future sprint."""
    accepted(
        post_github(
            client,
            *h.gh_issue("opened", "2019-05-10T10:00:00Z", number=50, repo="beta-org/app"),
            BETA_GH,
        )
    )
    accepted(post_jira(client, beta_jira_issue("BETA-7", duedate="2019-02-20"), BETA_JIRA))
    accepted(post_jira(client, beta_jira_issue("BETA-8", fixVersions=[VERSION]), BETA_JIRA))
    sprint = {**SPRINT, "state": "future"}
    accepted(post_jira(client, beta_jira_issue("BETA-9", customfield_10020=[sprint]), BETA_JIRA))
    h.run_worker(settings, redis_conn)
    outcomes = {k: r["outcome"] for k, r in h.commitments(settings).items()}
    assert outcomes == {BETA_ISSUE: "missed", "jira:BETA-7": "missed"}, outcomes


def beta_rows(settings) -> dict[str, list[tuple]]:
    """Every row of beta's ledger, all columns, as the database holds them."""
    with session_factory(settings.database_url)() as s:
        ids = select(Item.id).where(Item.client == "beta")
        tables = {
            "items": select(Item.__table__).where(Item.client == "beta"),
            "commitments": select(Commitment.__table__).where(Commitment.client == "beta"),
            "item_events": select(ItemEvent.__table__).where(ItemEvent.item_id.in_(ids)),
            "promise_changes": select(PromiseChangeRow.__table__).where(
                PromiseChangeRow.item_id.in_(ids)
            ),
        }
        rows = {name: sorted(tuple(r) for r in s.execute(q)) for name, q in tables.items()}
    assert rows["items"] and rows["commitments"]
    return rows


def stored_deliveries(settings) -> int:
    with session_factory(settings.database_url)() as s:
        return len(s.scalars(select(Delivery.id)).all())


# --- the attacks ------------------------------------------------------------------------------


def acme_pr(body: str = "", title: str | None = None) -> tuple[str, dict]:
    return h.gh_pr_merged(
        "2019-05-20T10:00:00Z", number=3, body=body, repo="acme-org/app", title=title
    )


def version_updated(secret_release: str = "2019-03-01") -> dict:
    return {
        "timestamp": h.jira_ms("2019-02-12T10:00:00+00:00"),
        "webhookEvent": "jira:version_updated",
        "version": {**VERSION, "releaseDate": secret_release, "projectId": 10001},
    }


def sprint_started() -> dict:
    return {
        "timestamp": h.jira_ms("2019-02-11T09:00:00+00:00"),
        "webhookEvent": "sprint_started",
        "sprint": {
            **SPRINT,
            "state": "active",
            "startDate": "2019-02-11T09:00:00.000Z",
            "endDate": "2019-02-22T17:00:00.000Z",
        },
    }


def foreign_key_issue() -> dict:
    """Acme's project in fields.project.key, beta's issue in issue.key, resolved Won't Do."""
    doc = h.jira_resolved("2019-02-12T10:00:00+00:00", key="BETA-7", resolution="Won't Do")
    doc["issue"]["fields"]["project"]["key"] = "ACME"
    doc["issue"]["self"] = f"{SITE}/rest/api/2/issue/BETA-7"
    return doc


def beta_issue_signed_by_acme() -> dict:
    doc = h.jira_resolved("2019-02-12T10:00:00+00:00", key="BETA-7", resolution="Won't Do")
    doc["issue"]["self"] = f"{SITE}/rest/api/2/issue/BETA-7"
    return doc


def beta_repo_signed_by(secret: str):
    def attack(client):
        event, doc = h.gh_issue("closed", "2019-05-12T10:00:00Z", number=50, repo="beta-org/app")
        return post_github(client, event, doc, secret)

    return attack


# name: (the request, its status, its answer's status or error)
ATTACKS = {
    "PR body Fixes beta-org/app#50": (
        lambda c: post_github(c, *acme_pr(body="Fixes beta-org/app#50"), ACME_GH),
        202,
        "queued",
    ),
    "PR title naming BETA-7": (
        lambda c: post_github(c, *acme_pr(title="BETA-7 Fix the export"), ACME_GH),
        202,
        "queued",
    ),
    "acme's project, beta's issue key": (
        lambda c: post_jira(c, foreign_key_issue(), ACME_JIRA),
        400,
        "project_mismatch",
    ),
    "beta's issue signed with acme's secret": (
        lambda c: post_jira(c, beta_issue_signed_by_acme(), ACME_JIRA),
        401,
        "bad_signature",
    ),
    "beta's version id, acme's secret": (
        lambda c: post_jira(c, version_updated(), ACME_JIRA),
        202,
        "queued",
    ),
    "beta's sprint id, acme's secret": (
        lambda c: post_jira(c, sprint_started(), ACME_JIRA),
        202,
        "queued",
    ),
    "beta's repository, acme's secret": (beta_repo_signed_by(ACME_GH), 401, "bad_signature"),
    "beta's repository, the global secret": (
        beta_repo_signed_by(GITHUB_SECRET),
        401,
        "bad_signature",
    ),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_no_reference_lets_acme_change_betas_ledger(client, settings, redis_conn, attack):
    seed_beta(client, settings, redis_conn)
    before, stored = beta_rows(settings), stored_deliveries(settings)
    send, status, answer = ATTACKS[attack]
    resp = send(client)
    assert resp.status_code == status, resp.json
    assert answer in (resp.json.get("status"), resp.json.get("error")), resp.json
    if status != 202:
        assert stored_deliveries(settings) == stored  # a refusal stores nothing
    h.run_worker(settings, redis_conn)
    assert beta_rows(settings) == before
    # And the delivery's own client's record still works: acme's PR is its own unpromised win.
    if attack.startswith("PR "):
        assert h.commitments(settings)["github:acme-org/app#3"]["outcome"] == "unpromised"


def test_a_scope_change_from_acme_is_not_pulled_by_betas_next_delivery(
    client, settings, redis_conn
):
    """A version change signed with acme's secret is stored for acme's projects only: beta's
    issue in that version, updated later by beta itself, does not pick it up."""
    seed_beta(client, settings, redis_conn)
    accepted(post_jira(client, version_updated(), ACME_JIRA))
    h.run_worker(settings, redis_conn)
    later = h.jira_due_changed("2019-02-13T10:00:00+00:00", None, None, key="BETA-8")
    later["issue"]["self"] = f"{SITE}/rest/api/2/issue/BETA-8"
    later["issue"]["fields"]["fixVersions"] = [VERSION]
    accepted(post_jira(client, later, BETA_JIRA))
    h.run_worker(settings, redis_conn)
    assert "jira:BETA-8" not in h.commitments(settings)
    assert h.promise_changes(settings, "jira:BETA-8") == []


# --- controls: from beta's own side, the same references do change beta's rows ---------------


CONTROLS = {
    "beta's PR Fixes #50": (
        lambda c: post_github(
            c,
            *h.gh_pr_merged(
                "2019-05-20T10:00:00Z", number=60, body="Fixes #50", repo="beta-org/app"
            ),
            BETA_GH,
        ),
        (BETA_ISSUE, "early"),
    ),
    "beta's PR title naming BETA-7": (
        lambda c: post_github(
            c,
            *h.gh_pr_merged(
                "2019-05-20T10:00:00Z", number=61, body="", repo="beta-org/app", title="BETA-7 done"
            ),
            BETA_GH,
        ),
        ("jira:BETA-7", "late"),
    ),
    "beta's version change": (
        lambda c: post_jira(c, version_updated(), BETA_JIRA),
        ("jira:BETA-8", "missed"),
    ),
    "beta's sprint start": (
        lambda c: post_jira(c, sprint_started(), BETA_JIRA),
        ("jira:BETA-9", "missed"),
    ),
}


@pytest.mark.parametrize("control", list(CONTROLS))
def test_the_same_reference_from_beta_itself_does_change_its_ledger(
    client, settings, redis_conn, control
):
    seed_beta(client, settings, redis_conn)
    before = beta_rows(settings)
    send, (key, outcome) = CONTROLS[control]
    accepted(send(client))
    h.run_worker(settings, redis_conn)
    assert beta_rows(settings) != before
    assert h.commitments(settings)[key]["outcome"] == outcome


# --- the store on its own: defence in depth ---------------------------------------------------


def test_the_store_ignores_events_and_links_for_another_clients_items(settings):
    """Whatever a connector lets through, apply_events changes only the delivery's client's
    items of listed sources: a linked delivery to beta's items or to an unlisted repository,
    and an event keyed to beta's item, are ignored."""
    directory = build_directory(settings.config)
    acme = Owner("acme-team", "acme")
    at = datetime(2019, 5, 20, 10, tzinfo=UTC)
    pr = DomainEvent(
        source="github",
        item_key="github:acme-org/app#3",
        kind=EventKind.DELIVERED,
        at=at,
        item_type="pull_request",
        links=(BETA_ISSUE, "jira:BETA-7", "github:stranger/repo#9", "jira:ACME-1"),
    )
    foreign = DomainEvent(
        source="jira",
        item_key="jira:BETA-7",
        kind=EventKind.PROMISE_SET,
        at=at,
        promised_date=date(2019, 6, 1),
    )
    with session_factory(settings.database_url)() as s:
        keys = store.apply_events(s, directory, acme, [pr, foreign], now=at)
        s.commit()
        assert keys == {"github:acme-org/app#3", "jira:ACME-1"}
        assert set(s.scalars(select(Item.key))) == keys


def test_a_site_wide_change_reaches_only_the_verified_sources_items(settings):
    """A version change applied with reach = acme's project is stored for it alone: beta's
    item in the same version (same site, same id) neither gets it now nor pulls it later."""
    directory = build_directory(settings.config)
    scope = "jira:some-instance-test.atlassian.net/version/20000"
    at = datetime(2019, 2, 10, 10, tzinfo=UTC)
    planned = [
        DomainEvent(source="jira", item_key=key, kind=EventKind.PLANNED, at=at, scope=scope)
        for key in ("jira:ACME-1", "jira:BETA-8")
    ]
    change = DomainEvent(
        source="jira",
        item_key=scope,
        kind=EventKind.MILESTONE_DUE_CHANGED,
        at=datetime(2019, 2, 12, 10, tzinfo=UTC),
        promised_date=date(2019, 3, 1),
        scope=scope,
        snapshot=False,
    )
    with session_factory(settings.database_url)() as s:
        store.apply_events(s, directory, Owner("acme-team", "acme"), planned[:1], now=at)
        store.apply_events(s, directory, Owner("beta-team", "beta"), planned[1:], now=at)
        touched = store.apply_events(s, directory, None, [change], reach={("jira", "ACME")}, now=at)
        s.commit()
        assert touched == {"jira:ACME-1"}
        # Beta's next event re-folds its item: the change is not there to pull.
        store.apply_events(s, directory, Owner("beta-team", "beta"), planned[1:], now=at)
        s.commit()
        assert list(s.scalars(select(ScopeEvent.scope))) == [
            store.stored_scope(scope, ("jira", "ACME"))
        ]
    rows = h.commitments(settings)
    assert rows["jira:ACME-1"]["promised_date"] == date(2019, 3, 1)
    assert "jira:BETA-8" not in rows


def test_no_reach_means_no_items(settings):
    """A site-wide change with nothing verified (reach empty) touches nothing."""
    directory = build_directory(settings.config)
    scope = "jira:some-instance-test.atlassian.net/sprint/77"
    change = DomainEvent(
        source="jira",
        item_key=scope,
        kind=EventKind.MILESTONE_DUE_CHANGED,
        at=datetime(2019, 2, 12, 10, tzinfo=UTC),
        promised_date=date(2019, 3, 1),
        scope=scope,
        snapshot=False,
    )
    with session_factory(settings.database_url)() as s:
        assert store.apply_events(s, directory, None, [change]) == set()
        assert s.scalars(select(ScopeEvent.id)).all() == []
