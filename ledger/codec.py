"""Domain events to JSON and back, for `item_events.data` and `scope_events.data`.

The round trip must be exact: `DomainEvent.event_id` is a hash of the content, and the fold
dedupes on it, so an event read back has to hash to the id it was stored under.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from ledger.events import DomainEvent, EventKind


def utc(value: datetime | None) -> datetime | None:
    """Aware UTC. SQLite hands DateTime(timezone=True) back naive (it stores no offset), and
    SQLAlchemy writes an aware value to SQLite by its wall clock, so every write goes through
    here too: a Berlin deadline stored unconverted would be an hour off."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def encode(event: DomainEvent) -> dict[str, Any]:
    return {
        "source": event.source,
        "item_key": event.item_key,
        "kind": event.kind.value,
        "at": event.at.isoformat(),
        "promised_date": event.promised_date.isoformat() if event.promised_date else None,
        "resolution": event.resolution,
        "size": event.size,
        "story_points": event.story_points,
        "links": list(event.links),
        "actor": event.actor,
        "title": event.title,
        "item_type": event.item_type,
        "scope": event.scope,
        "snapshot": event.snapshot,
        "due_at": event.due_at.isoformat() if event.due_at else None,
        "at_close": event.at_close,
    }


def decode(data: dict[str, Any]) -> DomainEvent:
    points = data.get("story_points")
    return DomainEvent(
        source=data["source"],
        item_key=data["item_key"],
        kind=EventKind(data["kind"]),
        at=datetime.fromisoformat(data["at"]),
        promised_date=date.fromisoformat(data["promised_date"])
        if data.get("promised_date")
        else None,
        resolution=data.get("resolution"),
        size=data.get("size"),
        story_points=float(points) if points is not None else None,
        links=tuple(data.get("links") or ()),
        actor=data.get("actor"),
        title=data.get("title"),
        item_type=data.get("item_type"),
        scope=data.get("scope"),
        snapshot=bool(data.get("snapshot", True)),
        # Absent from events stored before it existed; their ids are recomputed from content.
        due_at=datetime.fromisoformat(data["due_at"]) if data.get("due_at") else None,
        at_close=bool(data.get("at_close", False)),
    )
