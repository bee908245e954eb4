"""What the ledger knows of teams: the rules a team's commitments are judged by, and which team
(and client) owns the items of a repository or Jira project.

Plain values, not the configuration file's models: the layer that reads the configuration
builds them (`connectors.directory`), so the domain depends on what it needs and nothing more.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from trackrecord.config import DEFAULT_SIZE_LABEL_PREFIX, DEFAULT_SIZE_VALUES, source_index

# The configuration's default: the prefix with the two smallest size values.
_DEFAULT_SMALL_LABELS = tuple(f"{DEFAULT_SIZE_LABEL_PREFIX}{s}" for s in DEFAULT_SIZE_VALUES[:2])


@dataclass(frozen=True)
class TeamRules:
    """One team's settings that decide its ledger rows. The defaults are the configuration's,
    and apply to an item whose team is not (or no longer) listed."""

    timezone: str = "UTC"  # dates are judged in it
    on_time_basis: str = "first"  # which promise on-time is judged against (ledger.rules.Judge)
    # People whose comments answer for the team (first response), besides the GitHub logins
    # seen acting as members.
    members: frozenset[str] = frozenset()
    size_label_prefix: str = DEFAULT_SIZE_LABEL_PREFIX
    small_labels: tuple[str, ...] = _DEFAULT_SMALL_LABELS
    small_max_points: float = 3

    def is_small(self, size: str | None, story_points: float | None) -> bool:
        """A small win: the size label is one of `small_labels`, or the story points are at most
        `small_max_points`. `size` holds only the value; the label is the prefix and it."""
        labels = {label.lower() for label in self.small_labels}
        if size and f"{self.size_label_prefix}{size}".lower() in labels:
            return True
        return story_points is not None and story_points <= self.small_max_points


@dataclass(frozen=True)
class Owner:
    """Who an item belongs to."""

    team: str
    client: str


@dataclass(frozen=True)
class Directory:
    """Every team's rules by name, and every listed source's owner."""

    teams: Mapping[str, TeamRules] = field(default_factory=dict)
    # Keyed by trackrecord.config.source_index(kind, key), the configuration's own lookup.
    owners: Mapping[tuple[str, str], Owner] = field(default_factory=dict)

    def team(self, name: str | None) -> TeamRules | None:
        return self.teams.get(name) if name is not None else None

    def owner(self, kind: str, key: str) -> Owner | None:
        return self.owners.get(source_index(kind, key))
