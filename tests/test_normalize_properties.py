"""Property: whatever a signed payload holds, a connector's normaliser either gives domain events
with well-formed keys or raises InvalidPayload naming the field, never another exception (which
the worker would retry, then park, for a delivery that can never succeed).

The payloads are the real fixtures (tests/fixtures/) with one to three arbitrary JSON-ish
mutations: a value replaced (by null, a number, a list, a dict, a time that is no time, ...),
a key deleted or one added, anywhere in the document, preferring the fields the handlers read.
"""

from __future__ import annotations

import copy
import json
import math
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.github.normalize import GithubConfig
from connectors.github.normalize import normalize as normalize_github
from connectors.jira.normalize import JiraConfig
from connectors.jira.normalize import normalize as normalize_jira
from connectors.shapes import InvalidPayload, is_item_key

FIXTURES = Path(__file__).parent / "fixtures"
SITE = "https://some-instance-test.atlassian.net"

# Modest and repeatable: the suite stays fast and a failure is the same on every run.
PROPERTY = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _load(kind: str) -> list[tuple[str, dict]]:
    found = []
    for path in sorted((FIXTURES / kind).glob("*.json")):
        found.append((path.name.split(".", 1)[0], json.loads(path.read_text())))
    return found


GITHUB = [(event, doc) for event, doc in _load("github") if event != "ping"]
JIRA = [doc for _, doc in _load("jira")] + [
    {
        "timestamp": 1551000000000,
        "webhookEvent": "jira:version_updated",
        "version": {"self": f"{SITE}/rest/api/2/version/10001", "id": "10001",
                    "name": "v2", "releaseDate": "2019-03-15", "released": False},
    },
    {
        "timestamp": 1551000000000,
        "webhookEvent": "sprint_started",
        "sprint": {"id": 2, "self": f"{SITE}/rest/agile/1.0/sprint/2", "state": "active",
                   "name": "Sprint 2", "startDate": "2019-02-15T09:00:00.000Z",
                   "endDate": "2019-03-01T10:00:00.000Z", "originBoardId": 1},
    },
]  # fmt: skip
# An issue with a Cloud sprint list, a fix version and story points, so those paths are reached.
_planned = copy.deepcopy(JIRA[0])
_planned["issue"]["fields"].update(
    customfield_10020=[{"id": 2, "state": "active", "boardId": 1, "name": "Sprint 2",
                        "endDate": "2019-03-01T10:00:00.000Z"}],
    customfield_10016=3,
    fixVersions=[{"self": f"{SITE}/rest/api/2/version/10001", "id": "10001", "name": "v2"}],
)  # fmt: skip
JIRA.append(_planned)

# The names the handlers read: mutations prefer them, and added keys use them.
KEYS = [
    "number", "created_at", "updated_at", "closed_at", "merged_at", "merged", "state",
    "state_reason", "milestone", "due_on", "labels", "name", "user", "login", "body", "title",
    "head", "ref", "pull_request", "issue", "repository", "full_name", "sender", "comment",
    "changes", "action", "author_association",
    "key", "self", "fields", "project", "duedate", "fixVersions", "releaseDate", "id",
    "resolution", "resolutiondate", "status", "statusCategory", "changelog", "items", "field",
    "fieldId", "from", "to", "fromString", "toString", "timestamp", "endDate", "startDate",
    "boardId", "customfield_10020", "customfield_10016", "customfield_10021", "sprint",
    "version", "author", "accountId", "created", "updated", "webhookEvent",
    "issue_event_type_name", "reporter", "summary",
]  # fmt: skip
STRINGS = [
    "", "2019-05-15T15:20:18Z", "2019-02-15T19:01:52.971-0800", "2019-02-30", "2019-03-01",
    "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2019-05-15T15:20:18",
    "TES-41", "tes-41", "KT-22", "12345", "UTF-8", "<null>", "http://", "not a url",
    f"{SITE}/rest/api/2/version/1", "https://[::1/x", "acme-corp/platform", "a/b/c",
    "com.atlassian.greenhopper.service.sprint.Sprint@1[id=3,state=ACTIVE,"
    "endDate=2019-03-01T10:00:00.000Z]",
    "com.atlassian.greenhopper.service.sprint.Sprint@1[id=x,state=FUTURE]",
    "Fixes #3 and closes other/repo#4", "fix" + " " * 200 + "x", "PLAT-7 BETA-9",
    "closed", "open", "active", "future", "done", "not_planned", "size:S", "Won't Do",
    "opened", "milestoned", "demilestoned", "deleted", "transferred", "reopened",
]  # fmt: skip

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(STRINGS)
)
JSONISH = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def _mutate(draw, doc: dict) -> None:
    """One change somewhere in `doc`: walk down from the root, then replace, delete or add."""
    node = doc
    while True:
        if isinstance(node, dict):
            keys = list(node)
            read = [k for k in keys if k in KEYS]
            pick = st.sampled_from(read) | st.sampled_from(keys) if read else st.sampled_from(keys)
        else:
            keys = list(range(len(node)))
            pick = st.sampled_from(keys)
        if not keys:
            break
        key = draw(pick)
        child = node[key]
        if isinstance(child, dict | list) and child and draw(st.integers(0, 2)):
            node = child
            continue
        break
    op = draw(st.sampled_from(["replace", "delete", "add"])) if keys else "add"
    if op == "replace":
        node[key] = draw(JSONISH)
    elif op == "delete":
        del node[key]
    elif isinstance(node, dict):
        node[draw(st.sampled_from(KEYS))] = draw(JSONISH)
    else:
        node.append(draw(JSONISH))


@st.composite
def mutated(draw, docs: list):
    doc = copy.deepcopy(draw(st.sampled_from(docs)))
    for _ in range(draw(st.integers(1, 3))):
        _mutate(draw, doc[1] if isinstance(doc, tuple) else doc)
    return doc


GITHUB_CONFIGS = [
    GithubConfig(),
    GithubConfig(
        repositories=frozenset({"Codertocat/Hello-World", "robvanderleek/create-issue-branch"}),
        link_repositories=frozenset({"codertocat/hello-world"}),
        jira_projects=frozenset({"PLAT"}),
        received_at=datetime(2020, 1, 1, tzinfo=UTC),
    ),
]
JIRA_CONFIGS = [JiraConfig(), JiraConfig(sprint_field="customfield_10020")]
GITHUB_ACTIONS = [
    "opened", "closed", "reopened", "milestoned", "demilestoned", "deleted", "transferred",
    "edited", "labeled", "created", "synchronize", None, 7,
]  # fmt: skip
JIRA_EVENTS = [
    ("jira:issue_created", "issue_created"),
    ("jira:issue_updated", "issue_generic"),
    ("jira:issue_updated", "issue_commented"),
    ("jira:issue_deleted", None),
    ("comment_created", None),
    ("jira:version_updated", None),
    ("sprint_started", None),
    ("sprint_updated", None),
]


def check(events: list) -> None:
    for event in events:
        assert is_item_key(event.item_key), event.item_key
        assert event.scope is None or is_item_key(event.scope), event.scope
        assert all(is_item_key(link) for link in event.links), event.links
        assert event.at.tzinfo is UTC
        assert event.story_points is None or math.isfinite(event.story_points)
        assert event.event_id  # the content hash: every field can be represented


@PROPERTY
@given(
    case=mutated(GITHUB),
    event=st.none() | st.sampled_from(["issues", "pull_request", "issue_comment", "milestone"]),
    action=st.none() | st.sampled_from(GITHUB_ACTIONS),
    cfg=st.sampled_from(GITHUB_CONFIGS),
)
def test_github_payloads_normalise_or_are_invalid(case, event, action, cfg):
    name, doc = case
    if action is not None:
        doc["action"] = action
    try:
        events = normalize_github(event or name, doc, cfg)
    except InvalidPayload as exc:
        assert exc.reason
        return
    check(events)
    if cfg.link_repositories is not None:
        for e in events:
            for link in e.links:
                if link.startswith("github:"):
                    repo = link.removeprefix("github:").rsplit("#", 1)[0].lower()
                    own = e.item_key.removeprefix("github:").rsplit("#", 1)[0].lower()
                    assert repo in cfg.link_repositories or repo == own, link
                else:
                    assert link.removeprefix("jira:").rsplit("-", 1)[0] in cfg.jira_projects


@PROPERTY
@given(
    doc=mutated(JIRA),
    route=st.none() | st.sampled_from(JIRA_EVENTS),
    cfg=st.sampled_from(JIRA_CONFIGS),
)
def test_jira_payloads_normalise_or_are_invalid(doc, route, cfg):
    if route is not None:
        doc["webhookEvent"], doc["issue_event_type_name"] = route
    try:
        events = normalize_jira(doc, cfg)
    except InvalidPayload as exc:
        assert exc.reason
        return
    check(events)


@pytest.mark.parametrize("cfg", GITHUB_CONFIGS)
def test_every_github_fixture_normalises(cfg):
    for event, doc in GITHUB:
        check(normalize_github(event, copy.deepcopy(doc), cfg))


@pytest.mark.parametrize("cfg", JIRA_CONFIGS)
def test_every_jira_fixture_normalises(cfg):
    for doc in JIRA:
        check(normalize_jira(copy.deepcopy(doc), cfg))
