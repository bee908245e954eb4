"""The intake's insert has no pool pre-ping (a round trip saved on every request): a pooled
connection the database dropped is replaced by one retry on a fresh connection, so the first
request after a database restart is still stored and answered 202, once."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, func, select, text

from tests.helpers import fixture_bytes, github_headers
from trackrecord.db import session_factory
from trackrecord.models import Delivery


def post(client, delivery: str):
    body = fixture_bytes("github/issues.opened.json")
    return client.post(
        "/webhooks/github", data=body, headers=github_headers("issues", body, delivery=delivery)
    )


def test_a_dropped_connection_is_replaced_and_the_delivery_stored_once(client, settings):
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("SQLite has no server to drop a connection")
    assert post(client, "before").status_code == 202  # the intake's pool now holds a connection
    name = settings.database_url.rsplit("/", 1)[1]
    admin = create_engine(settings.database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        # What a database restart does to every pooled connection.
        dropped = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": name},
        ).scalar()
    admin.dispose()
    assert dropped >= 1
    resp = post(client, "after")
    assert resp.status_code == 202, resp.json
    assert resp.json["status"] == "queued"
    with session_factory(settings.database_url)() as s:
        n = s.scalar(select(func.count()).where(Delivery.delivery_id == "after"))
    assert n == 1
