"""Migration 0012: on PostgreSQL a stored delivery's body is compressed with lz4 (where the
server has it), and the migration goes down and up again. The body reads back byte for byte."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine, select, text

from tests.helpers import github_headers, json_of
from trackrecord import migrate
from trackrecord.models import Delivery


def _post(client, n: int) -> bytes:
    doc = json_of("github/issues.milestoned.json")
    doc["issue"]["body"] = "A long description of the work. " * 250  # past TOAST's 2 KB
    body = json.dumps(doc).encode()
    resp = client.post("/webhooks/github", data=body,
                       headers=github_headers("issues", body, f"lz4-{n}"))  # fmt: skip
    assert resp.status_code == 202, resp.json
    return body


def test_a_stored_body_is_compressed_with_lz4_and_reads_back_whole(client, settings):
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("SQLite compresses nothing")
    engine = create_engine(settings.database_url)
    with engine.connect() as conn:
        available = conn.scalar(
            text("SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'")
        )
    if "lz4" not in (available or []):
        pytest.skip("this PostgreSQL was built without lz4")

    def compression(delivery: str) -> str | None:
        with engine.connect() as conn:
            return conn.scalar(
                text("SELECT pg_column_compression(body) FROM deliveries WHERE delivery_id = :d"),
                {"d": delivery},
            )

    first = _post(client, 1)
    assert compression("lz4-1") == "lz4"
    migrate.downgrade(settings.database_url, "0011")
    _post(client, 2)
    assert compression("lz4-2") == "pglz"
    migrate.upgrade(settings.database_url)
    with engine.connect() as conn:
        stored = conn.scalar(select(Delivery.body).where(Delivery.delivery_id == "lz4-1"))
    assert stored == first
    engine.dispose()
