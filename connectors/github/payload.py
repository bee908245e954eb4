"""Reading a GitHub issue or pull request payload: the team's connector settings, times and
due dates, the item's key, size and links, and the domain event a handler builds from them.

Shared by the action handlers (`connectors.github.normalize`) and the evidence a payload's
current state gives (`connectors.github.evidence`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from functools import cached_property
from typing import Any

from connectors.github import links as found_links
from ledger.events import DomainEvent, EventKind

Payload = dict[str, Any]


@dataclass(frozen=True)
class GithubConfig:
    size_label_prefix: str = "size:"
    size_values: tuple[str, ...] = ("XS", "S", "M", "L", "XL")
    # Every configured repository as the configuration spells it. GitHub names are
    # case-insensitive, so `acme-corp/platform` and `Acme-Corp/Platform` are one repository: item
    # and milestone keys take the configured spelling, or lower case for a repository not
    # listed. None (no configuration: tests, tools) keeps the payload's spelling.
    repositories: frozenset[str] | None = None
    # Lower-case names of the repositories a pull request may close issues in: its client's.
    # None accepts any repository.
    link_repositories: frozenset[str] | None = None
    # Jira projects a pull request may name: its client's. None accepts any KEY-123, which also
    # matches words like UTF-8.
    jira_projects: frozenset[str] | None = None
    # When the delivery arrived. A deletion has no time of its own in the payload (the object's
    # updated_at is its last edit, maybe weeks before), so it is dated by its arrival.
    received_at: datetime | None = None

    @cached_property
    def _spellings(self) -> dict[str, str]:
        return {name.lower(): name for name in self.repositories or ()}

    def canonical(self, repo: str) -> str:
        """The one spelling of a repository's name that item keys use."""
        if self.repositories is None:
            return repo
        return self._spellings.get(repo.lower(), repo.lower())

    def may_link_repository(self, repo: str) -> bool:
        return self.link_repositories is None or repo.lower() in self.link_repositories

    def may_link_jira(self, key: str) -> bool:
        return self.jira_projects is None or key.rsplit("-", 1)[0] in self.jira_projects


DEFAULT = GithubConfig()


def parse_time(value: str | None) -> datetime | None:
    """GitHub sends ISO 8601 in UTC with a Z; whole seconds already."""
    return datetime.fromisoformat(value) if value else None


def due_date(milestone: Payload | None) -> date | None:
    """The promised calendar date of a milestone.

    GitHub stores a milestone's due date as a day but sends it as a timestamp at midnight
    US Pacific, so it arrives as 07:00Z or 08:00Z. Its UTC calendar date is the day the user
    picked; converting to the team's timezone would move it a day back west of UTC-7.
    """
    if not milestone or not milestone.get("due_on"):
        return None
    return datetime.fromisoformat(milestone["due_on"]).date()


def milestone_key(payload: Payload, milestone: Payload) -> str:
    # The number is stable across renames, unlike the title.
    return f"github:{payload['repository']['full_name']}/milestone/{milestone['number']}"


def item_of(payload: Payload) -> Payload:
    return payload.get("pull_request") or payload["issue"]


def login_of(user: Payload | None) -> str | None:
    return (user or {}).get("login")


def _size(item: Payload, cfg: GithubConfig) -> str | None:
    prefix = cfg.size_label_prefix.lower()
    for label in item.get("labels") or []:
        name = label.get("name", "")
        if name.lower().startswith(prefix):
            value = name[len(prefix) :].strip().upper()
            if value in cfg.size_values:
                return value
    return None


def named_items(payload: Payload, cfg: GithubConfig) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The items a pull request names (closing keywords in its body, Jira keys in its title and
    branch), split into those it may deliver and those it may not: a pull request reaches only
    its own client's repositories and Jira projects (`GithubConfig.link_repositories`,
    `jira_projects`), so `Fixes beta-org/app#50` in another client's pull request delivers
    nothing there.
    """
    if "pull_request" not in payload:
        return (), ()
    item = payload["pull_request"]
    own = payload["repository"]["full_name"]
    kept: set[str] = set()
    ignored: set[str] = set()
    for repo, number in found_links.closing_refs(item.get("body") or ""):
        if repo is None or repo.lower() == own.lower():
            kept.add(f"github:{own}#{number}")
        else:
            key = f"github:{cfg.canonical(repo)}#{number}"
            (kept if cfg.may_link_repository(repo) else ignored).add(key)
    text = f"{item.get('title') or ''} {(item.get('head') or {}).get('ref') or ''}"
    for key in found_links.jira_keys(text):
        (kept if cfg.may_link_jira(key) else ignored).add(f"jira:{key}")
    return tuple(sorted(kept)), tuple(sorted(ignored))


def links_of(payload: Payload) -> tuple[str, ...]:
    # Read once per delivery by `normalize`, which logs what it ignored.
    return payload.get(LINKS_KEY, ())


LINKS_KEY = "_links"  # the clean payload's own key: GitHub's fields never start with "_"


def identity(payload: Payload) -> dict[str, Any]:
    """Which item a payload is about: its key and whether it is a pull request."""
    item = item_of(payload)
    is_pr = "pull_request" in payload or "pull_request" in item
    return {
        "source": "github",
        "item_key": f"github:{payload['repository']['full_name']}#{item['number']}",
        "item_type": "pull_request" if is_pr else "issue",
    }


def item_event(
    payload: Payload, kind: EventKind, at: str | None, cfg: GithubConfig, **extra: Any
) -> DomainEvent:
    item = item_of(payload)
    fields: dict[str, Any] = {
        **identity(payload),
        "kind": kind,
        "at": parse_time(at or item["updated_at"]),
        "size": _size(item, cfg),
        "links": links_of(payload),
        "actor": login_of(payload.get("sender")),
        "title": item.get("title"),
    }
    fields.update(extra)
    return DomainEvent(**fields)
