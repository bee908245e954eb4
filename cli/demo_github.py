"""A GitHub item of the demo's story as the deliveries GitHub sends: `issues` or `pull_request`
payloads (opened, milestoned, demilestoned, closed, reopened) and the `milestone` ones (created,
closed), built from the octokit and create-issue-branch fixtures with their fields replaced.
Payload reference: https://docs.github.com/en/webhooks/webhook-events-and-payloads
"""

from __future__ import annotations

import copy
import json
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from cli.demo_fixtures import fixture, gh_time
from cli.demo_story import Container, Item

PACIFIC = ZoneInfo("America/Los_Angeles")


def _repository(repo: str) -> dict:
    text = json.dumps(fixture("github/issues.opened.json")["repository"])
    doc = json.loads(text.replace("Codertocat/Hello-World", repo))
    owner, name = repo.split("/", 1)
    doc.update(name=name, full_name=repo, id=zlib.crc32(repo.encode()) % 10**9)
    doc["owner"]["login"] = owner
    return doc


def _milestone(repo: str, m: Container | None, state: str = "open") -> dict | None:
    if m is None:
        return None
    doc = copy.deepcopy(fixture("github/issues.milestoned.json")["milestone"])
    api = f"https://api.github.com/repos/{repo}/milestones/{m.number}"
    doc.update(
        url=api,
        html_url=f"https://github.com/{repo}/milestone/{m.number}",
        labels_url=f"{api}/labels",
        id=4317500 + m.number,
        node_id=f"MI_{m.number}",
        number=m.number,
        title=m.title,
        description="",
        state=state,
        created_at=gh_time(m.opened),
        updated_at=gh_time(m.opened),
        # GitHub keeps a day and sends it as midnight US Pacific (07:00Z or 08:00Z).
        due_on=gh_time(datetime.combine(m.due, time.min, PACIFIC)),
        closed_at=None,
    )
    return doc


def _item_doc(item: Item, state: dict) -> dict:
    repo, n = item.source, item.number
    kind = "pull" if item.pr else "issues"
    if item.pr:
        doc = copy.deepcopy(fixture("github/pull_request.closed.merged.json")["pull_request"])
        doc.pop("_links", None)
        for side in ("head", "base"):
            doc[side].update(repo=_repository(repo), label=f"{repo.split('/')[0]}:{side}")
        doc["head"]["ref"] = f"chore-{n}"
        merged = state["merged_at"]
        doc.update(
            merged_at=gh_time(merged),
            merged=merged is not None,
            merge_commit_sha=f"{n:040x}" if merged else None,
        )
    else:
        doc = copy.deepcopy(fixture("github/issues.opened.json")["issue"])
        doc["state_reason"] = state["reason"]
    api = f"https://api.github.com/repos/{repo}/issues/{n}"
    doc.update(
        url=api,
        html_url=f"https://github.com/{repo}/{kind}/{n}",
        id=444500000 + n,
        node_id=f"I_{n}",
        number=n,
        title=item.title,
        body="",
        labels=[],
        state=state["state"],
        milestone=_milestone(repo, state["milestone"]),
        created_at=gh_time(item.opened),
        updated_at=gh_time(state["updated_at"]),
        closed_at=gh_time(state["closed_at"]),
        author_association="MEMBER",
    )
    return doc


def github_deliveries(item: Item) -> Iterator[tuple[str, datetime, dict]]:
    """(event, time, body) of each delivery of a GitHub item: its opening, then each step,
    every payload showing the item as it stands after that step."""
    state = {
        "state": "open",
        "milestone": item.born_in,
        "closed_at": None,
        "reason": None,
        "merged_at": None,
        "updated_at": item.opened,
    }
    event = "pull_request" if item.pr else "issues"

    def body(action: str, milestone: Container | None = None) -> dict:
        doc: dict = {"action": action}
        if item.pr:
            doc.update(number=item.number, pull_request=_item_doc(item, state))
        else:
            doc["issue"] = _item_doc(item, state)
        if milestone is not None:
            doc["milestone"] = _milestone(item.source, milestone)
        doc.update(repository=_repository(item.source), sender=_sender(item.source))
        return doc

    yield event, item.opened, body("opened")
    for step in item.steps:
        state["updated_at"] = step.at
        if step.action in ("plan", "move"):
            old, state["milestone"] = state["milestone"], step.container
            yield event, step.at, body("milestoned", step.container)
            if old is not None:  # a move: GitHub sends milestoned and demilestoned together
                yield event, step.at, body("demilestoned", old)
        elif step.action in ("close", "drop", "merge"):
            state.update(state="closed", closed_at=step.at)
            state["reason"] = "not_planned" if step.action == "drop" else "completed"
            state["merged_at"] = step.at if step.action == "merge" else None
            yield event, step.at, body("closed")
        elif step.action == "reopen":
            # GitHub keeps the old closed_at on a reopened issue.
            state.update(state="open", reason="reopened")
            yield event, step.at, body("reopened")


def _sender(repo: str) -> dict:
    doc = copy.deepcopy(fixture("github/issues.opened.json")["sender"])
    doc["login"] = f"{repo.split('/')[0]}-lead"
    return doc


def milestone_deliveries(repo: str, m: Container, now: datetime) -> Iterator[tuple]:
    doc = {
        "action": "created",
        "milestone": _milestone(repo, m),
        "repository": _repository(repo),
        "sender": _sender(repo),
    }
    yield "milestone", m.opened, doc
    closed_at = datetime.combine(m.due + timedelta(days=1), time(9), PACIFIC).astimezone(UTC)
    if closed_at <= now:
        done = copy.deepcopy(doc)
        done["action"] = "closed"
        done["milestone"].update(
            state="closed", updated_at=gh_time(closed_at), closed_at=gh_time(closed_at)
        )
        yield "milestone", closed_at, done
