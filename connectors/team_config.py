"""The connectors' settings for one team, from its configuration: size labels (GitHub), the
story points field (Jira), and which Jira keys a pull request may name.

The worker (live deliveries) and the backfills build them here, so a team's item gets the same
size and story points whichever way it entered the ledger.
"""

from __future__ import annotations

from connectors.github.normalize import GithubConfig
from connectors.jira.normalize import JiraConfig
from trackrecord.config import Config


def github_config(config: Config, team: str | None = None) -> GithubConfig:
    # Only configured Jira projects count as links: a bare KEY-123 pattern also matches words
    # like UTF-8, and an unlisted project's issue has no team to belong to.
    projects = frozenset(s.key for s in config.sources("jira"))
    model = config.team(team) if team else None
    if model is None:
        return GithubConfig(jira_projects=projects)
    return GithubConfig(
        size_label_prefix=model.size_label_prefix,
        size_values=tuple(model.size_values),
        jira_projects=projects,
    )


def jira_config(config: Config, team: str | None = None) -> JiraConfig:
    model = config.team(team) if team else None
    if model is None:
        return JiraConfig()
    return JiraConfig(story_points_field=model.story_points_field)
