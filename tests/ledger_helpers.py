"""Payload builders and ledger readers for the ledger tests.

Builders start from the real fixture files and change only the fields a scenario needs (the
fixtures lack milestones on closes, due-date edits and Jira due dates: tests/fixtures/SOURCES.md,
"Gaps"). Readers return plain dicts with UTC-aware times, so rows compare equal across SQLite
(naive datetimes) and PostgreSQL.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

from rq import Queue
from sqlalchemy import select

from ledger.codec import utc
from ledger.tables import Commitment, Item, PromiseChangeRow
from tests.helpers import github_headers, jira_headers, json_of
from trackrecord.db import session_factory
from workers.runner import TrackrecordWorker

REPO = "Codertocat/Hello-World"  # team "platform", UTC
WEB_REPO = "robvanderleek/create-issue-branch"  # team "web", Europe/Berlin


def ms(day: str) -> str:
    """A milestone due date as GitHub sends it: midnight US Pacific, 07:00Z in summer."""
    return f"{day}T07:00:00Z"


def gh_issue(
    action: str,
    at: str,
    *,
    number: int = 1,
    due: str | None = "2019-05-23",
    repo=REPO,
    milestone: int = 1,
    **issue_fields,
) -> tuple[str, dict]:
    """An `issues` delivery for issue `number`, built from the octokit `issues.opened` sample."""
    doc = copy.deepcopy(json_of("github/issues.opened.json"))
    doc["action"] = action
    doc["repository"]["full_name"] = repo
    issue = doc["issue"]
    issue["number"] = number
    issue["updated_at"] = at
    if due is None:
        issue["milestone"] = None
    else:
        issue["milestone"] = {**issue["milestone"], "number": milestone, "due_on": ms(due)}
    if action in ("milestoned", "demilestoned"):
        doc["milestone"] = issue["milestone"] or {
            **json_of("github/issues.milestoned.json")["milestone"],
            "number": milestone,
        }
        if action == "demilestoned":
            issue["milestone"] = None
    if action == "closed":
        issue.update(state="closed", closed_at=at)
        issue.setdefault("state_reason", "completed")
    issue.update(issue_fields)
    return "issues", doc


def gh_milestone_due(at: str, due: str | None, *, number: int = 1, repo=REPO) -> tuple[str, dict]:
    """`milestone.edited` with `changes.due_on` (documented, no real capture: SOURCES.md)."""
    doc = copy.deepcopy(json_of("github/milestone.closed.json"))
    doc["action"] = "edited"
    doc["repository"]["full_name"] = repo
    doc["changes"] = {"due_on": {"from": doc["milestone"]["due_on"]}}
    doc["milestone"].update(number=number, due_on=ms(due) if due else None, updated_at=at)
    return "milestone", doc


def gh_pr_merged(
    at: str,
    *,
    number: int = 117,
    body: str = "Closes #111",
    repo=WEB_REPO,
    title: str | None = None,
) -> tuple[str, dict]:
    doc = copy.deepcopy(json_of("github/pull_request.closed.merged.json"))
    doc["repository"]["full_name"] = repo
    pr = doc["pull_request"]
    pr.update(number=number, body=body, merged_at=at, closed_at=at, updated_at=at)
    if title is not None:
        pr["title"] = title
    return "pull_request", doc


def gh_comment(at: str, login: str, association: str, *, number: int = 1) -> tuple[str, dict]:
    event, doc = gh_issue("created", at, number=number)
    doc["comment"] = {
        "id": 1,
        "user": {"login": login},
        "created_at": at,
        "updated_at": at,
        "author_association": association,
        "body": "Thanks, looking.",
    }
    return "issue_comment", doc


def _jira_key(doc: dict, key: str) -> None:
    doc["issue"]["key"] = key
    # Intake routes by fields.project.key when present, so it has to agree with the key.
    if isinstance(doc["issue"]["fields"].get("project"), dict):
        doc["issue"]["fields"]["project"]["key"] = key.rsplit("-", 1)[0]


def jira_ms(at: str) -> int:
    return int(datetime.fromisoformat(at).timestamp() * 1000)


def jira_created(at: str, *, key: str = "TES-41", due: str | None = "2019-02-20", **fields):
    doc = copy.deepcopy(json_of("jira/jira.issue_created.json"))
    doc["timestamp"] = jira_ms(at)
    _jira_key(doc, key)
    doc["issue"]["fields"].update(created=at, updated=at, duedate=due, **fields)
    return doc


def jira_resolved(at: str, *, key: str = "TES-41", resolution: str = "Done", due="2019-02-20"):
    doc = copy.deepcopy(json_of("jira/jira.issue_updated.resolved.json"))
    doc["timestamp"] = jira_ms(at)
    _jira_key(doc, key)
    f = doc["issue"]["fields"]
    f.update(resolutiondate=at, updated=at, duedate=due)
    f["resolution"] = {**f["resolution"], "name": resolution}
    return doc


def jira_due_changed(at: str, old: str | None, new: str | None, *, key: str = "TES-41"):
    doc = copy.deepcopy(json_of("jira/jira.issue_updated.status_in_progress.json"))
    doc["timestamp"] = jira_ms(at)
    _jira_key(doc, key)
    doc["issue"]["fields"].update(updated=at, duedate=new)
    doc["changelog"]["items"] = [
        {
            "field": "duedate",
            "fieldtype": "jira",
            "fieldId": "duedate",
            "from": old,
            "fromString": old,
            "to": new,
            "toString": new,
        }
    ]
    return doc


def post_github(client, event: str, doc: dict, delivery: str | None = None) -> None:
    body = json.dumps(doc).encode()
    resp = client.post("/webhooks/github", data=body, headers=github_headers(event, body, delivery))
    assert resp.status_code in (200, 202), resp.json
    assert resp.json["status"] in ("queued", "duplicate"), resp.json


def post_jira(client, doc: dict, delivery: str | None = None) -> None:
    body = json.dumps(doc).encode()
    resp = client.post("/webhooks/jira", data=body, headers=jira_headers(body, delivery))
    assert resp.status_code in (200, 202), resp.json
    assert resp.json["status"] in ("queued", "duplicate"), resp.json


def run_worker(settings, redis_conn) -> None:
    queue = Queue(settings.queue_name, connection=redis_conn)
    TrackrecordWorker([queue], connection=redis_conn).work(burst=True)
    assert queue.count == 0


_SKIP = {"id", "item_id", "updated_at"}


def _plain(row) -> dict:
    out = {}
    for col in row.__table__.columns:
        if col.key in _SKIP:
            continue
        value = getattr(row, col.key)
        out[col.key] = utc(value) if isinstance(value, datetime) else value
    return out


def commitments(settings) -> dict[str, dict]:
    with session_factory(settings.database_url)() as s:
        rows = s.execute(
            select(Item.key, Commitment).join(Commitment, Commitment.item_id == Item.id)
        )
        return {key: _plain(c) for key, c in rows}


def items(settings) -> dict[str, dict]:
    with session_factory(settings.database_url)() as s:
        return {i.key: _plain(i) for i in s.scalars(select(Item))}


def promise_changes(settings, key: str) -> list[tuple]:
    with session_factory(settings.database_url)() as s:
        rows = s.scalars(
            select(PromiseChangeRow)
            .join(Item, Item.id == PromiseChangeRow.item_id)
            .where(Item.key == key)
            .order_by(PromiseChangeRow.seq)
        )
        return [(utc(r.at), r.promised_date, r.scope) for r in rows]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def outcomes(url: str, short) -> dict[str, tuple]:
    """{short(item key): (outcome, slip_days, promised_date)} of every commitments row."""
    with session_factory(url)() as session:
        rows = session.execute(
            select(
                Item.key, Commitment.outcome, Commitment.slip_days, Commitment.promised_date
            ).join(Commitment, Commitment.item_id == Item.id)
        ).all()
    return {short(key): (outcome, slip, day) for key, outcome, slip, day in rows}
