"""The connectors' settings for one team, from its configuration: size labels (GitHub), the
story points field (Jira), the spelling of repository names in item keys, and which
repositories and Jira projects a pull request may name (its client's).

The worker (live deliveries) and the backfills build them here, so a team's item gets the same
size and story points whichever way it entered the ledger.
"""

from __future__ import annotations

from dataclasses import replace

from connectors.github.payload import GithubConfig
from connectors.jira.fields import JiraConfig
from trackrecord.config import Config


def github_config(config: Config, team: str | None = None) -> GithubConfig:
    """The team's size labels; every repository's configured spelling, for canonical item keys;
    and what the team's pull requests may link: the repositories and Jira projects of its own
    client only (a client's pull request must not deliver another client's item). Only
    configured Jira projects count: a bare KEY-123 pattern also matches words like UTF-8.
    Without a team (no client) a pull request links nothing."""
    model = config.team(team) if team else None
    client = config.client_of(team) if team else None
    mine = [s for s in config.sources() if client is not None and s.client == client.name]
    cfg = GithubConfig(
        repositories=frozenset(s.key for s in config.sources("github")),
        link_repositories=frozenset(s.key.lower() for s in mine if s.kind == "github"),
        jira_projects=frozenset(s.key for s in mine if s.kind == "jira"),
    )
    if model is None:
        return cfg
    return replace(
        cfg, size_label_prefix=model.size_label_prefix, size_values=tuple(model.size_values)
    )


def jira_config(config: Config, team: str | None = None) -> JiraConfig:
    model = config.team(team) if team else None
    if model is None:
        return JiraConfig()
    return JiraConfig(story_points_field=model.story_points_field)
