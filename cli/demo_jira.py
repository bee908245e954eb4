"""A Jira issue of the demo's story as the `jira:issue_created` and `jira:issue_updated`
deliveries Jira Cloud sends, built from the Mattermost fixtures with their fields replaced: the
sprint field, fix versions, due date, status and resolution as they stand after each change,
and a changelog naming what changed.
Payload reference: https://developer.atlassian.com/server/jira/platform/webhooks/
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import datetime

from cli.demo_fixtures import fixture, jira_time
from cli.demo_story import Container, DemoTeam, Item

SPRINT_FIELD = "customfield_10020"  # Jira Cloud's sprint field
POINTS_FIELD = "customfield_10016"  # the default story points field
RESOLUTIONS = {"Done": "10000", "Won't Do": "10001"}


def _sprint(s: Container, at: datetime) -> dict:
    state = "future" if at < s.opened else "active" if at < s.end else "closed"
    out = {
        "id": s.number,
        "name": s.title,
        "state": state,
        "boardId": 1,
        "goal": "",
        "startDate": s.opened.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "endDate": s.end.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
    }
    if state == "closed":
        out["completeDate"] = out["endDate"]
    return out


def _version(team: DemoTeam, v: Container, at: datetime) -> dict:
    return {
        "self": f"{team.site}/rest/api/2/version/{v.number}",
        "id": str(v.number),
        "name": v.title,
        "description": "",
        "archived": False,
        "released": at.date() > v.due,
        "releaseDate": v.due.isoformat(),
    }


def _change(field_: str, field_id: str, old, old_s, to, to_s) -> dict:
    return {
        "field": field_,
        "fieldtype": "jira",
        "fieldId": field_id,
        "from": old,
        "fromString": old_s,
        "to": to,
        "toString": to_s,
    }


def jira_deliveries(item: Item, team: DemoTeam) -> Iterator[tuple[str, datetime, dict]]:
    todo = fixture("jira/jira.issue_created.json")["issue"]["fields"]["status"]
    doing = fixture("jira/jira.issue_updated.status_in_progress.json")["issue"]["fields"]["status"]
    done = fixture("jira/jira.issue_updated.resolved.json")["issue"]["fields"]["status"]
    key, ident = f"{item.source}-{item.number}", str(10000 + item.number)
    state = {
        "sprint": None,
        "version": None,
        "due": None,
        "status": todo,
        "resolution": None,
        "resolved": None,
    }
    history = 0

    def body(name: str, at: datetime, changes: list[dict] | None) -> dict:
        nonlocal history
        doc = copy.deepcopy(fixture(name))
        doc["timestamp"] = int(at.timestamp() * 1000)
        fields = doc["issue"]["fields"]
        fields.update(
            summary=item.title,
            created=jira_time(item.opened),
            updated=jira_time(at),
            duedate=state["due"].isoformat() if state["due"] else None,
            fixVersions=[_version(team, state["version"], at)] if state["version"] else [],
            status=copy.deepcopy(state["status"]),
            lastViewed=None,
            resolution=state["resolution"],
            resolutiondate=jira_time(state["resolved"]),
            project={
                **fields["project"],
                "key": item.source,
                "self": f"{team.site}/rest/api/2/project/{item.source}",
            },
        )
        fields[SPRINT_FIELD] = [_sprint(state["sprint"], at)] if state["sprint"] else None
        fields[POINTS_FIELD] = float(1 + item.number % 5)
        doc["issue"].update(id=ident, key=key, self=f"{team.site}/rest/api/2/issue/{ident}")
        if changes is None:
            doc.pop("changelog", None)
        else:
            history += 1
            doc["changelog"] = {"id": str(item.number * 100 + history), "items": changes}
        return doc

    yield "jira", item.opened, body("jira/jira.issue_created.json", item.opened, None)
    for step in item.steps:
        updated = "jira/jira.issue_updated.sprint.json"
        if step.action == "plan" and step.container.kind == "sprint":
            state["sprint"] = step.container
            c = [
                _change(
                    "Sprint", SPRINT_FIELD, "", "", str(step.container.number), step.container.title
                )
            ]
        elif step.action == "plan":
            state["version"] = step.container
            c = [
                _change(
                    "Fix Version",
                    "fixVersions",
                    None,
                    None,
                    str(step.container.number),
                    step.container.title,
                )
            ]
            updated = "jira/jira.issue_updated.fix_version.json"
        elif step.action == "due":
            old, state["due"] = state["due"], step.due
            c = [
                _change(
                    "duedate",
                    "duedate",
                    old and old.isoformat(),
                    None,
                    step.due.isoformat(),
                    f"{step.due.isoformat()} 00:00:00.0",
                )
            ]
            updated = "jira/jira.issue_updated.status_in_progress.json"
        elif step.action in ("close", "drop"):
            name = "Won't Do" if step.action == "drop" else "Done"
            state.update(
                status=done,
                resolved=step.at,
                resolution={
                    "self": f"{team.site}/rest/api/2/resolution/{RESOLUTIONS[name]}",
                    "id": RESOLUTIONS[name],
                    "description": "",
                    "name": name,
                },
            )
            c = [
                _change("resolution", "resolution", None, None, RESOLUTIONS[name], name),
                _change("status", "status", "3", "In Progress", "10002", "Done"),
            ]
            updated = "jira/jira.issue_updated.resolved.json"
        else:  # reopen: back to work, the resolution cleared
            old = state["resolution"]["id"]
            state.update(status=doing, resolved=None, resolution=None)
            c = [
                _change("resolution", "resolution", old, "Done", None, None),
                _change("status", "status", "10002", "Done", "3", "In Progress"),
            ]
            updated = "jira/jira.issue_updated.reopened.json"
        yield "jira", step.at, body(updated, step.at, c)
