"""Where the demo's payloads come from: real deliveries shipped with the package in
cli/demo_templates (copies of the test fixtures of the same names; see its SOURCES.md), read
once; and the two platforms' ways of writing a time."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

# Inside the package, not tests/fixtures: an installed wheel has no tests folder.
FIXTURES = Path(__file__).resolve().parent / "demo_templates"


@cache
def fixture(name: str) -> dict:
    """A fixture's JSON, shared: callers copy what they change."""
    try:
        return json.loads((FIXTURES / name).read_bytes())
    except OSError:
        raise FileNotFoundError(
            f"the demo's template payload is missing: {FIXTURES / name}"
        ) from None


def gh_time(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def jira_time(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000") if moment else None
