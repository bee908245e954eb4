"""Where the demo's payloads come from: the real deliveries in tests/fixtures (see its
SOURCES.md), read once; and the two platforms' ways of writing a time."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"


@cache
def fixture(name: str) -> dict:
    """A fixture's JSON, shared: callers copy what they change."""
    try:
        return json.loads((FIXTURES / name).read_bytes())
    except OSError:
        raise FileNotFoundError(f"the demo's template payloads are missing: {FIXTURES}") from None


def gh_time(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def jira_time(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000") if moment else None
