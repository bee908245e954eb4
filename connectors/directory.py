"""The ledger's view of the configuration (`ledger.teams.Directory`), built in this one place.

The worker (live deliveries) and the backfills both write through `ledger.store`, which takes
plain team rules and owners rather than the configuration's models; building them here keeps
one reading of the configuration for both paths.
"""

from __future__ import annotations

from ledger.teams import Directory, Owner, TeamRules
from trackrecord.config import Config, Source, source_index


def build_directory(config: Config) -> Directory:
    teams = {
        team.name: TeamRules(
            timezone=team.timezone,
            on_time_basis=team.on_time_basis,
            members=frozenset(team.members),
            size_label_prefix=team.size_label_prefix,
            small_labels=tuple(team.small_labels),
            small_max_points=team.small_max_points,
        )
        for client in config.clients
        for team in client.teams
    }
    owners = {source_index(s.kind, s.key): owner_of(s) for s in config.sources()}
    return Directory(teams=teams, owners=owners)


def owner_of(source: Source | None) -> Owner | None:
    """The owner of a delivery's own source, for the items it names that no team lists."""
    return Owner(source.team, source.client) if source is not None else None
