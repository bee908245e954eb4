"""The titles of the milestones, fix versions and sprints a payload names, by scope key.

The ledger keys a scope by what is stable (a milestone's number, a version's or sprint's id),
so its name is kept apart: comments and summaries say "promised for Sprint 42", and the API's
milestones carry their titles. Every issue payload shows its milestone (or fix versions and
sprints) whole, so the title is current as of the newest delivery. Pure: the worker decides
which of these a delivery may write (`workers.milestone_summary.record`).
"""

from __future__ import annotations

from typing import Any

from connectors.github.payload import item_of, milestone_key
from connectors.jira.fields import JiraConfig, scope_key, site_of_issue, sprints
from connectors.shapes import InvalidPayload, numeric_id, site_host

MAX_TITLE = 300  # the column's width; a longer name is cut, never refused

Payload = dict[str, Any]


def _title(value: object) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()[:MAX_TITLE]


def github_titles(event: str, doc: Payload) -> dict[str, str]:
    candidates = [doc.get("milestone")]
    if event in ("issues", "pull_request", "issue_comment"):
        item = item_of(doc) if isinstance(doc.get("issue") or doc.get("pull_request"), dict) else {}
        candidates.append(item.get("milestone"))
    out = {}
    for milestone in candidates:
        if isinstance(milestone, dict) and isinstance(milestone.get("number"), int):
            title = _title(milestone.get("title"))
            if title:
                out[milestone_key(doc, milestone)] = title
    return out


def jira_titles(doc: Payload, cfg: JiraConfig) -> dict[str, str]:
    out = {}
    for kind in ("version", "sprint"):
        obj = doc.get(kind)
        site = site_host(obj.get("self")) if isinstance(obj, dict) else None
        ident = numeric_id(obj.get("id")) if isinstance(obj, dict) else None
        if site and ident and _title(obj.get("name")):
            out[scope_key(kind, site, ident)] = _title(obj["name"])
    issue = doc.get("issue")
    fields = issue.get("fields") if isinstance(issue, dict) else None
    if not isinstance(fields, dict):
        return out
    site = site_of_issue(doc)
    versions = fields.get("fixVersions")
    for version in versions if isinstance(versions, list) else []:
        if not isinstance(version, dict):
            continue
        where, ident = site_host(version.get("self")) or site, numeric_id(version.get("id"))
        if where and ident and _title(version.get("name")):
            out[scope_key("version", where, ident)] = _title(version["name"])
    try:
        found = sprints(fields, cfg)
    except InvalidPayload:
        found = []
    for sprint in found:
        where, ident = site_host(sprint.get("self")) or site, numeric_id(sprint.get("id"))
        if where and ident and _title(sprint.get("name")):
            out[scope_key("sprint", where, ident)] = _title(sprint["name"])
    return out
