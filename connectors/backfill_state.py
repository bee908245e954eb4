"""What GitHub and Jira backfills share: where a run resumes, how a page is written, progress.

Both platforms list items by `updated` ascending, so "everything up to item X is in the ledger"
is one instant plus the ids seen at that instant. That cursor, not a page number or token, is
what is stored: pages shift while items change, and Jira's nextPageToken expires, while an
updated-at cursor stays true. Each page is written and its cursor saved in one transaction, so
a run that dies mid-way resumes after the last page it committed.
"""

from __future__ import annotations

import operator
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from sqlalchemy import select
from sqlalchemy.orm import Session
from tqdm import tqdm

from connectors.directory import build_directory, owner_of
from ledger.events import DomainEvent
from ledger.store import apply_events
from trackrecord.config import Config, Source
from trackrecord.logs import get_logger
from trackrecord.models import SyncState

log = get_logger("connectors.backfill")


@dataclass(frozen=True)
class Fetched:
    """One listed item. `events` is called only if the item is not skipped, so resuming does
    not re-read the timelines or changelogs of items already in the ledger."""

    item_id: str
    updated_at: datetime
    events: Callable[[], list[DomainEvent]]


@dataclass(frozen=True)
class Resume:
    start: datetime | None  # list items updated at or after this
    seen: frozenset[str]  # ids already written whose updated_at equals `start`
    from_cursor: bool


def since_instant(since: date | datetime | None) -> datetime | None:
    if since is None:
        return None
    if isinstance(since, datetime):
        # SQLite hands back naive datetimes; they were stored as UTC.
        return since if since.tzinfo else since.replace(tzinfo=UTC)
    return datetime.combine(since, time.min, tzinfo=UTC)


def load_state(session_factory, source: str, key: str) -> SyncState | None:
    with session_factory() as session:
        return _state(session, source, key)


def _state(session: Session, source: str, key: str) -> SyncState | None:
    return session.scalar(select(SyncState).where(SyncState.source == source, SyncState.key == key))


def save_state(session: Session, source: str, key: str, **values) -> SyncState:
    """Set `values` on the source's sync_state row, created when missing. Does not commit."""
    state = _state(session, source, key)
    if state is None:
        state = SyncState(source=source, key=key)
        session.add(state)
    for name, value in values.items():
        setattr(state, name, value)
    return state


def resume_point(state: SyncState | None, since, restart: bool = False) -> Resume:
    """The later of the requested start and the stored cursor: a second run continues."""
    start = since_instant(since)
    cursor = (state.cursor if state else None) or {}
    if restart or not cursor.get("updated_since"):
        return Resume(start, frozenset(), False)
    stored = datetime.fromisoformat(cursor["updated_since"])
    if start is not None and start > stored:
        return Resume(start, frozenset(), False)
    return Resume(stored, frozenset(cursor.get("seen") or ()), True)


# fetch(since, n) -> (items, more): page n (from 0) of the items updated at or after `since`
# (None: all) by `updated` ascending, and whether the list goes on after it. The platform may
# widen `since` (Jira's JQL reads whole minutes); what was read already is dropped here.
PageFetch = Callable[[datetime | None, int], tuple[list[Fetched], bool]]


def cursor_pages(
    fetch: PageFetch,
    resume: Resume,
    same_query: Callable[[datetime | None, datetime | None], bool] = operator.eq,
) -> Iterator[list[Fetched]]:
    """The listing, paged by the cursor itself: each request starts again at the `updated`
    instant of the last item read, and what was already read at that instant is dropped.

    Page numbers and offsets are not safe over a list sorted by `updated`: an item changed
    during the run moves to the end, everything behind it moves up one place, and the first
    item of the next page slides into a page already read. Its `updated` is older than the
    run's start, so the next sync (from `last_synced_at`) would not see it either. A request
    that starts at the cursor cannot skip anything: every item updated between the cursor and
    the end of the page it answers is on that page.

    Only when the cursor's query is the one just asked (more than a page of items at one
    instant, or in one JQL minute: `same_query`, which the platform's filter cannot split)
    does the listing page on by number within that query. Each such page is vouched for by
    reading the page before it again: items only ever leave their place (to the end), so an
    unchanged previous page means nothing before the new page moved; a changed one means the
    list shifted, and the listing starts again at the cursor.
    """
    cursor, seen = resume.start, set(resume.seen)  # what has been read
    query, n, before = cursor, 0, None  # the query's start, page number, ids of page n - 1

    def ids(page: list[Fetched]) -> list[str]:
        return [item.item_id for item in page]

    while True:
        page, more = fetch(query, n)
        if n and ids(fetch(query, n - 1)[0]) != before:
            query, n, before = cursor, 0, None
            continue
        fresh = []
        for item in page:
            when = item.updated_at.astimezone(UTC)
            if cursor is not None and (when < cursor or (when == cursor and item.item_id in seen)):
                continue
            fresh.append(item)
            if when != cursor:
                cursor, seen = when, set()
            seen.add(item.item_id)
        if fresh:
            yield fresh
        if not more:
            return  # the end of the list as it stood; later changes are after the run's start
        if fresh and not same_query(query, cursor):
            query, n, before = cursor, 0, None
        else:
            n, before = n + 1, ids(page)


class Progress:
    """A tqdm bar on a terminal, silent otherwise; rate-limit waits show as its postfix."""

    def __init__(self, label: str, enabled: bool | None = None) -> None:
        enabled = sys.stderr.isatty() if enabled is None else enabled
        self.bar = tqdm(desc=label, unit="item", disable=not enabled, file=sys.stderr)

    def waiting(self, seconds: float, status: int | None, reason: str | None = None) -> None:
        # Without an HTTP status the server did not answer at all: say why (refused, no such
        # host, timed out) rather than a bare "status": null.
        why = "rate limited" if status in (403, 429) else f"HTTP {status}" if status else "retry"
        why = reason if status is None and reason else why
        self.bar.set_postfix_str(f"{why}: waiting {seconds:.0f}s", refresh=True)
        about = {"status": status} if status is not None else {"reason": why}
        log.info("backfill.wait", seconds=round(seconds, 1), **about)

    def advance(self, n: int) -> None:
        self.bar.set_postfix_str("", refresh=False)
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()


def run(
    session_factory,
    config: Config,
    source: Source,
    listing: Iterable[Fetched],
    *,
    sync_source: str,
    since,
    progress: Progress,
    restart: bool = False,
    on_page: Callable[[Session], None] | None = None,
) -> dict:
    """Write `listing` (pages of items) to the ledger, resuming where the last run stopped.

    `on_page` runs inside each page's transaction (GitHub records the team members it saw).
    """
    started = datetime.now(UTC)
    resume = resume_point(load_state(session_factory, sync_source, source.key), since, restart)
    requested = since_instant(since)
    cursor = {
        "since": requested.isoformat() if requested else None,
        "updated_since": resume.start.isoformat() if resume.start else None,
        "seen": sorted(resume.seen),
        "complete": False,
    }
    summary = {"source": source.kind, "key": source.key, "items": 0, "skipped": 0}
    summary |= {"events": 0, "pages": 0, "resumed_from": None}
    if resume.from_cursor:
        summary["resumed_from"] = cursor["updated_since"]
    seen = set(resume.seen)
    directory, owner = build_directory(config), owner_of(source)
    try:
        for page in listing:
            events: list[DomainEvent] = []
            for item in page:
                at = item.updated_at.astimezone(UTC)
                last = datetime.fromisoformat(cursor["updated_since"]) if seen else None
                if resume.start and (at < resume.start or (at == last and item.item_id in seen)):
                    summary["skipped"] += 1
                    continue
                events.extend(item.events())
                if last != at:
                    seen = set()
                seen.add(item.item_id)
                cursor["updated_since"], cursor["seen"] = at.isoformat(), sorted(seen)
                summary["items"] += 1
            with session_factory() as session, session.begin():
                if events:
                    apply_events(session, directory, owner, events)
                if on_page is not None:
                    on_page(session)
                save_state(session, sync_source, source.key, cursor=dict(cursor))
            summary["events"] += len(events)
            summary["pages"] += 1
            progress.advance(len(page))
        cursor["complete"] = True
        # Items changed while this run was listing have updated_at after `started`, so the next
        # run (or sync_changed) starting from here misses nothing.
        with session_factory() as session, session.begin():
            save_state(session, sync_source, source.key, cursor=cursor, last_synced_at=started)
    finally:
        progress.close()
    summary |= {"complete": True, "last_synced_at": started.isoformat()}
    log.info("backfill.done", **summary)
    return summary


def sync_changed(
    backfill, sync_source: str, source: Source, *, session_factory, config: Config
) -> dict:
    """Re-read the items changed since the last good sync (reconciliation's backfill path):
    `backfill` is backfill_github or backfill_jira, `sync_source` its SyncState name."""
    state = load_state(session_factory, sync_source, source.key)
    since = state.last_synced_at if state else None
    return backfill(session_factory, config, source.key, since=since, progress=False)
