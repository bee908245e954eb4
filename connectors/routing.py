"""A connector's routing table: which deliveries it reads, which it drops on purpose, and the
handler of each. The webhook view (accept, ignore or refuse) and the worker (which handler) both
read the connector's one table, so they cannot disagree about an event.

Keys are (event, action); the action "*" stands for any action of that event, and an exact key
wins over it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

H = TypeVar("H")
ANY = "*"


class Decision(StrEnum):
    HANDLE = "handle"  # stored, queued, normalised by its handler
    IGNORE = "ignore"  # received on purpose, nothing in it for the ledger: acknowledged only
    UNSUPPORTED = "unsupported"  # not ours: refused, so a misconfigured hook shows it


@dataclass(frozen=True)
class RoutingTable(Generic[H]):
    routes: Mapping[tuple[str, str], H]
    ignored: frozenset[tuple[str, str]]

    def __post_init__(self) -> None:
        both = set(self.routes) & self.ignored
        if both:
            raise ValueError(f"routed and ignored at once: {sorted(both)}")

    def _lookup(self, event: str, action: str | None) -> tuple[Decision, H | None]:
        for key in ((event, action or ""), (event, ANY)):
            if key in self.routes:
                return Decision.HANDLE, self.routes[key]
            if key in self.ignored:
                return Decision.IGNORE, None
        return Decision.UNSUPPORTED, None

    def decide(self, event: str, action: str | None) -> Decision:
        return self._lookup(event, action)[0]

    def handler(self, event: str, action: str | None) -> H | None:
        return self._lookup(event, action)[1]

    @property
    def events(self) -> frozenset[str]:
        """Events with at least one action the connector reads."""
        return frozenset(event for event, _ in self.routes)

    @property
    def known(self) -> frozenset[str]:
        """Events the table decides about: read, or acknowledged and dropped."""
        return self.events | {event for event, _ in self.ignored}
