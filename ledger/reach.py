"""Which items one delivery may change: its own client's, in sources the configuration lists
(docs/security.md, "Tenant isolation"). `ledger.store.apply_events` asks it of every event and
every linked delivery before anything is written.
"""

from __future__ import annotations

from collections.abc import Collection

from ledger.teams import Directory, Owner
from trackrecord.config import source_index
from trackrecord.logs import get_logger

log = get_logger("ledger.store")


def split_key(key: str) -> tuple[str, str]:
    """'github:owner/repo#12' -> ('github', 'owner/repo'); 'jira:PLAT-7' -> ('jira', 'PLAT')."""
    kind, _, rest = key.partition(":")
    return kind, rest.rsplit("#", 1)[0] if kind == "github" else rest.rsplit("-", 1)[0]


class Reach:
    """Which items one delivery may change (docs/security.md, "Tenant isolation").

    A delivery from a source may change items of that source's client only, and only of
    sources the configuration lists: whatever else its payload names (a PR body's
    `Fixes other-org/app#50`, another client's Jira key in a title, an item key of another
    project) is ignored and logged. A Jira sprint or version delivery names no source: it may
    reach the items of the sources its signature verified (`sources`, source_index pairs).
    """

    def __init__(
        self,
        directory: Directory,
        source_owner: Owner | None,
        sources: Collection[tuple[str, str]] | None,
    ):
        self.directory, self.owner = directory, source_owner
        self.sources = frozenset(sources or ())

    def allows(self, key: str) -> bool:
        kind, source_key = split_key(key)
        if self.owner is None:
            return source_index(kind, source_key) in self.sources
        own = self.directory.owner(kind, source_key)
        return own is not None and own.client == self.owner.client

    def refuse(self, key: str, *, named_by: str | None = None) -> None:
        log.warning(
            "ledger.foreign_reference",
            item=key,
            named_by=named_by,
            client=self.owner.client if self.owner else None,
        )

    def scope_owners(self) -> list[tuple[str, str] | None]:
        """For whom a scope change is stored: None (anyone naming the scope) for a delivery from a
        source, whose scope keys carry that source (`github:owner/repo/milestone/3`); each verified
        source for a Jira sprint or version delivery, whose ids are site-wide and which any client
        on the same site could name."""
        return [None] if self.owner is not None else sorted(self.sources)
