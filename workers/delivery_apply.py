"""What a claimed delivery does to the ledger: normalised by its connector, then applied, one
delivery at a time (`handle`) or a batch's deliveries together (`apply_rows`).

Runs inside the caller's transaction, so the claims and the ledger writes commit together or
not at all. A delivery changes only what its signature verified: items of its source's client
(ledger.reach checks each item), or, for a Jira sprint or version event, items of the projects
using the secret that signed it (`row.verified_sources`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import structlog

from connectors import team_config
from connectors.directory import owner_of
from connectors.github import normalize as github
from connectors.jira import normalize as jira
from ledger import store
from ledger.events import DomainEvent
from ledger.store_batch import Part, groupable
from trackrecord import payloads
from trackrecord.config import source_index
from trackrecord.logs import get_logger
from trackrecord.models import Delivery
from workers import context, milestone_summary, postback

log = get_logger("workers.jobs")


@dataclass
class Prepared:
    """A delivery normalised: its events and what it may change, not yet applied."""

    row: Delivery
    doc: dict
    team: str | None
    part: Part
    members: tuple[str, list[str]] | None = None  # (team, logins seen acting as members)

    @property
    def keys(self) -> set[str]:
        return {e.item_key for e in self.part.events}


def handle(session, row: Delivery, doc: dict) -> None:
    """Normalise the payload with its connector and apply the events to the ledger."""
    prepared = prepare(row, doc)
    if prepared is not None:
        apply_one(session, prepared)


def prepare(row: Delivery, doc: dict) -> Prepared | None:
    """The delivery's events, or None when its source says it changes nothing."""
    config = context.settings().config
    source = config.source(row.source, row.source_key) if row.source_key else None
    if row.source_key and source is None:
        # The source was listed when the delivery arrived and is not any more.
        log.warning("delivery.unknown_source", row=row.id, source=row.source, key=row.source_key)
        return None
    if source is not None and not _verified_for(row, source):
        # Intake stores only deliveries verified for their source; a row saying otherwise was
        # not written by it.
        log.warning("delivery.unverified_source", row=row.id, source=row.source, key=source.key)
        return None
    reach, members = None, None
    events: Sequence[DomainEvent]
    if row.source == "github" and source is not None:
        # The team's size labels, and the configured Jira projects as link targets.
        cfg = team_config.github_config(config, source.team)
        cfg = replace(cfg, received_at=_utc(row.received_at))
        events = github.normalize(row.event, doc, cfg)
        members = (source.team, github.team_logins(doc))
    elif row.source == "jira":
        # Sprint and version events (no project key) are keyed by their scope; the store fans
        # them out to the items that named it among the projects the signature verified.
        # Each team's own story points field; site-wide events carry no story points.
        cfg = team_config.jira_config(config, source.team if source else None)
        events = jira.normalize(doc, cfg)
        if source is None:
            reach = _site_wide_reach(config, row)
    else:
        log.warning("delivery.unknown_source", row=row.id, source=row.source, key=row.source_key)
        return None
    team = source.team if source else None
    return Prepared(row, doc, team, Part(owner_of(source), events, reach), members)


def apply_one(session, p: Prepared) -> None:
    if p.members is not None:
        store.remember_members(session, p.members[0], "github", p.members[1])
    touched: set[str] = set()
    if p.part.events:
        # Settlements that arrive by webhook get a comment (issue 9); backfill and
        # reconciliation call store.apply_events directly and never post about the past.
        touched = postback.apply_and_record(
            session, context.directory(), p.part.owner, p.part.events, reach=p.part.reach
        )
    # The living summaries of the scopes touched (and of a closed milestone), issue 9.
    milestone_summary.record(session, touched, p.row, p.doc, p.team)


def prepare_row(row: Delivery) -> Prepared | None:
    with structlog.contextvars.bound_contextvars(delivery=row.delivery_id, row=row.id):
        return prepare(row, payloads.decode(row.body, row.headers))


def apply_rows(session, rows: Sequence[Delivery], prepared: dict | None = None) -> None:
    """Apply claimed deliveries in arrival order. Runs of plain deliveries (`groupable`) that
    touch distinct items are applied together (`ledger.store_batch`); a delivery naming an
    item already in the run starts a new one, and any other delivery is applied alone, after
    the run before it. Each item's events still fold in event-time order. `prepared`: the
    deliveries already normalised by `plan`."""
    group: list[Prepared] = []
    keys: set[str] = set()
    prepared = prepared or {}
    for row in rows:
        p = prepared[row.id] if row.id in prepared else prepare_row(row)
        if p is None:
            continue
        if not groupable(p.part.events):
            _apply_group(session, group)
            group, keys = [], set()
            with structlog.contextvars.bound_contextvars(delivery=row.delivery_id, row=row.id):
                apply_one(session, p)
            continue
        if keys & p.keys:
            _apply_group(session, group)
            group, keys = [], set()
        group.append(p)
        keys |= p.keys
    _apply_group(session, group)


def _apply_group(session, group: list[Prepared]) -> None:
    if not group:
        return
    if len(group) == 1:
        apply_one(session, group[0])
        return
    seen: dict[str, set[str]] = {}
    for p in group:
        if p.members is not None:
            seen.setdefault(p.members[0], set()).update(p.members[1])
    for team, logins in sorted(seen.items()):
        store.remember_members(session, team, "github", logins)
    reached = postback.apply_group_and_record(session, context.directory(), [p.part for p in group])
    milestone_summary.record_group(
        session, [(scopes, p.row, p.doc, p.team) for scopes, p in zip(reached, group, strict=True)]
    )


def _verified_for(row: Delivery, source) -> bool:
    if row.verified_sources is None:
        return True  # stored before 0006, when intake checked the source's own secret
    want = source_index(source.kind, source.key)
    return any(source_index(row.source, key) == want for key in row.verified_sources)


def _site_wide_reach(config, row: Delivery) -> set[tuple[str, str]]:
    """The Jira projects a sprint or version delivery may reach: those its signature verified.
    A row stored before 0006 was verified with the global Jira secret, so: the projects that
    use it (no `secret_env` of their own)."""
    if row.verified_sources is None:
        keys = [s.key for s in config.sources("jira") if s.secret_env is None]
    else:
        keys = [k for k in row.verified_sources if config.source("jira", k) is not None]
    return {source_index("jira", key) for key in keys}


def _utc(moment: datetime) -> datetime:
    # SQLite hands back the naive UTC value it was given.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
