"""A Jira issue read through the REST API with `expand=changelog` becomes domain events.

A REST issue has the same shape as the webhook's `issue`, but only as it is now. The changelog
says what each change replaced, so the issue's fields are rolled back change by change to
creation, then replayed forward: each step is the `jira:issue_updated` payload Jira would have
sent at that moment, handed to the webhook handlers in `normalize`. Live and backfilled history
therefore obey the same rules, and every promise and resolution carries its changelog time.
Changelog reference:
https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issue-search/#api-rest-api-3-search-jql-get
"""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import datetime
from typing import Any

from connectors.jira import fields as jira_fields
from connectors.jira import normalize
from connectors.jira.fields import DEFAULT, JiraConfig, parse_time
from ledger.events import DomainEvent

Payload = dict[str, Any]


def sprint_field(fields: Payload, cfg: JiraConfig) -> str | None:
    if cfg.sprint_field:
        return cfg.sprint_field
    for name, value in fields.items():
        if name.startswith("customfield_") and jira_fields.sprints(
            {name: value}, replace(cfg, sprint_field=name)
        ):
            return name
    return None


def _sprint_at(sprint: Payload, at: datetime) -> Payload:
    """The sprint as it stood at `at`: a sprint now closed was active while it ran."""

    def when(key: str) -> datetime | None:
        value = sprint.get(key)
        return parse_time(value) if value and value != "<null>" else None

    start, done = when("startDate"), when("completeDate")
    state = (
        "future" if start is None or at < start else "closed" if done and at >= done else "active"
    )
    return {**sprint, "state": state}


def _undo(fields: Payload, items: list[Payload], known: dict[str, Payload], cfg: JiraConfig):
    """Fields as they were before the change whose changelog `items` are given."""
    for item in items:
        name = str(item.get("field") or "").lower()
        field_id = str(item.get("fieldId") or "")
        old, old_text = item.get("from"), item.get("fromString")
        if name == "duedate":
            fields["duedate"] = (old or old_text or "")[:10] or None
        elif field_id == "fixVersions" or name == "fix version":
            versions = [
                v for v in fields.get("fixVersions") or [] if str(v.get("id")) != item.get("to")
            ]
            if old:
                versions.append(known.get(f"version/{old}") or {"id": old, "name": old_text})
            fields["fixVersions"] = versions
        elif name == "sprint":
            target = field_id if field_id.startswith("customfield_") else known.get("sprint_field")
            if target:
                ids = [i.strip() for i in str(old or "").split(",") if i.strip()]
                fields[target] = [known[f"sprint/{i}"] for i in ids if f"sprint/{i}" in known]
        elif name == "status":
            fields["status"] = known.get(f"status/{old}") or {
                "id": old,
                "name": old_text,
                # Only the current status comes with its category; changelogs name statuses.
                "statusCategory": {
                    "key": "done" if str(old_text).lower() in cfg.done_statuses else "indeterminate"
                },
            }
        elif name == "resolution":
            fields["resolution"] = {"id": old, "name": old_text} if old else None
        elif name == "summary":
            fields["summary"] = old_text


def _known(fields: Payload, versions: dict[str, Payload], cfg: JiraConfig) -> dict[str, Any]:
    known: dict[str, Any] = {f"version/{k}": v for k, v in versions.items()}
    for version in fields.get("fixVersions") or []:
        known.setdefault(f"version/{version['id']}", version)
    field = sprint_field(fields, cfg)
    known["sprint_field"] = field
    if field:
        for sprint in jira_fields.sprints(fields, replace(cfg, sprint_field=field)):
            known[f"sprint/{sprint['id']}"] = sprint
    if fields.get("status"):
        known[f"status/{fields['status'].get('id')}"] = fields["status"]
    return known


def _at(fields: Payload, at: datetime, known: dict[str, Any]) -> Payload:
    field = known.get("sprint_field")
    out = dict(fields)
    if field and fields.get(field):
        sprints = [s for s in fields[field] if isinstance(s, dict)] or [
            known[f"sprint/{s['id']}"] for s in jira_fields.sprints({field: fields[field]}, DEFAULT)
        ]
        out[field] = [_sprint_at(s, at) for s in sprints]
    return out


def issue_history(
    issue: Payload, versions: dict[str, Payload] | None = None, cfg: JiraConfig = DEFAULT
) -> list[DomainEvent]:
    """Domain events for one REST issue with its changelog.

    `versions` maps version id -> version object (with releaseDate) for fix versions the issue
    has since left; the changelog names them by id only.
    """
    fields_now = issue["fields"]
    known = _known(fields_now, versions or {}, cfg)
    histories = sorted(
        (issue.get("changelog") or {}).get("histories") or [],
        key=lambda h: (parse_time(h["created"]), int(h.get("id") or 0)),
    )
    # states[i] is the issue before histories[i]; the last one is the issue now.
    states = [copy.deepcopy(fields_now)]
    for history in reversed(histories):
        before = copy.deepcopy(states[0])
        _undo(before, history.get("items") or [], known, cfg)
        # resolutiondate is the latest resolution only; earlier closes take the changelog time.
        before["resolutiondate"] = None
        states.insert(0, before)
    created = parse_time(fields_now["created"])

    def payload(fields: Payload, **extra) -> Payload:
        # `self` says the site, which version and sprint scope keys name
        # (connectors.jira.fields.scope_key).
        shown = {"key": issue["key"], "id": issue.get("id"), "self": issue.get("self")}
        return {"issue": {**shown, "fields": fields}, **extra}

    # Each step goes through the webhook normaliser whole, so what a payload shows (due date,
    # fix versions, sprint, status) is read as evidence too: the fields as they stood then.
    first = payload(
        _at(states[0], created, known),
        webhookEvent="jira:issue_created",
        timestamp=int(created.timestamp() * 1000),
    )
    events = normalize.normalize(first, cfg)
    for history, after in zip(histories, states[1:], strict=True):
        at = parse_time(history["created"])
        step = payload(
            _at(after, at, known),
            webhookEvent="jira:issue_updated",
            timestamp=int(at.timestamp() * 1000),
            user=history.get("author"),
            changelog={"items": history.get("items") or []},
        )
        events += normalize.normalize(step, cfg)
    for comment in (fields_now.get("comment") or {}).get("comments") or []:
        # comment_created: the event says nothing about the item's other fields.
        events += normalize.normalize(
            payload(fields_now, webhookEvent="comment_created", comment=comment), cfg
        )
    return events
