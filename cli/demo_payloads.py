"""The demo's story as webhook deliveries, in the order the platforms would send them.

Every body starts from a delivery GitHub or Jira really sent (tests/fixtures, see its
SOURCES.md) and changes only what the story needs (cli/demo_github.py, cli/demo_jira.py). Each
payload states its item's state after the change it reports, with that change's own timestamps,
so a year of history can be sent today. Delivery ids derive from the seed and the item, never
from the date, so a second run sends the same ids and the intake answers them as duplicates.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from cli.demo_github import github_deliveries, milestone_deliveries
from cli.demo_jira import jira_deliveries
from cli.demo_story import Story


@dataclass(frozen=True)
class Delivery:
    platform: str  # github | jira
    event: str | None  # X-GitHub-Event
    id: str
    at: datetime
    body: bytes = field(repr=False)


def deliveries(story: Story, seed: int) -> list[Delivery]:
    """Every delivery of the story in the order the platforms would send them."""
    space = uuid.uuid5(uuid.NAMESPACE_URL, f"trackrecord-demo:{seed}")
    teams = {t.name: t for t in story.teams}
    found: list[tuple[datetime, int, Delivery]] = []

    def add(platform: str, label: str, parts: Iterator[tuple]) -> None:
        for n, (event, at, doc) in enumerate(parts):
            ident = str(uuid.uuid5(space, f"{label}:{n}"))
            body = json.dumps(doc, separators=(",", ":")).encode()
            event = event if platform == "github" else None
            found.append((at, len(found), Delivery(platform, event, ident, at, body)))

    for team in story.teams:
        for m in story.containers[team.name]:
            if m.kind == "milestone" and team.repo:
                add(
                    "github",
                    f"{team.repo}/milestone/{m.number}",
                    milestone_deliveries(team.repo, m, story.now),
                )
    for item in story.items:
        if item.platform == "github":
            add("github", item.key, github_deliveries(item))
        else:
            add("jira", item.key, jira_deliveries(item, teams[item.team]))
    return [d for _, _, d in sorted(found, key=lambda f: (f[0], f[1]))]
