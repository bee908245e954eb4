"""The intake's group commit (webhook_app.intake_group): concurrent requests share one insert
and one Redis command, and each is answered as if it had been written alone: stored once, a
duplicate as a duplicate, a row the database refuses failing only its own request, `pending`
for the whole group when Redis is down, and SQLite's write lock waited for, not failed on."""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from rq import Queue
from sqlalchemy import select

from tests.helpers import fixture_bytes, github_headers
from trackrecord.db import session_factory
from trackrecord.models import Delivery
from webhook_app import intake_group, intake_rows
from webhook_app.intake_group import Entry
from webhook_app.services import EXTENSION
from workers import observe
from workers.jobs import job_id
from workers.runner import TrackrecordWorker


@pytest.fixture
def groups(monkeypatch) -> list[int]:
    """The size of every insert statement, in order; the first one slowed down, as a busy
    database would be, so that the requests arriving meanwhile form a group."""
    sizes: list[int] = []
    insert = intake_rows.Rows.insert

    def recorded(self, rows):
        sizes.append(len(rows))
        if len(sizes) == 1:
            time.sleep(0.2)
        return insert(self, rows)

    monkeypatch.setattr(intake_rows.Rows, "insert", recorded)
    return sizes


def stored(settings) -> list[Delivery]:
    with session_factory(settings.database_url)() as s:
        return list(s.scalars(select(Delivery).order_by(Delivery.id)))


def values(delivery: str, **changed) -> dict:
    now = datetime.now(UTC)
    row = dict(
        source="github", delivery_id=delivery, event="issues", action="opened",
        source_key="Codertocat/Hello-World", team="platform", verified_sources=None,
        headers={}, body=b"{}", status="queued", queued_at=now, attempts=1, received_at=now,
    )  # fmt: skip
    return {**row, **changed}


def test_concurrent_requests_share_inserts_and_each_gets_its_own_answer(
    client, app, settings, redis_conn, groups
):
    body = fixture_bytes("github/issues.opened.json")
    # 40 deliveries, 10 of them sent twice at once (a redelivery racing its original).
    sends = [f"group-{i}" for i in range(40)] + [f"group-{i}" for i in range(10)]

    def post(delivery):
        headers = github_headers("issues", body, delivery=delivery)
        return delivery, client.post("/webhooks/github", data=body, headers=headers)

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(post, sends))

    assert max(groups) > 1, groups  # requests did share statements
    assert sum(groups) == len(sends)  # each request's row was in exactly one statement
    by_delivery: dict[str, list[tuple[int, str]]] = {}
    for delivery, resp in answers:
        by_delivery.setdefault(delivery, []).append((resp.status_code, resp.json["status"]))
    for delivery, got in by_delivery.items():
        # Exactly one acceptance per delivery; the racing copy is a duplicate.
        assert sorted(got)[-1] == (202, "queued"), (delivery, got)
        assert sorted(got)[:-1] == [(200, "duplicate")] * (len(got) - 1), (delivery, got)

    rows = stored(settings)
    assert sorted(r.delivery_id for r in rows) == sorted(set(sends))
    queue = Queue(settings.queue_name, connection=redis_conn)
    assert sorted(queue.job_ids) == sorted(job_id(r.id) for r in rows)
    counted = observe.received(redis_conn)
    assert counted[("github", "issues", "queued", "")] == 40

    queue_worker = TrackrecordWorker([queue], connection=redis_conn)
    queue_worker.work(burst=True)
    assert {r.status for r in stored(settings)} == {"processed"}


def test_a_row_the_database_refuses_fails_only_its_own_request(app, settings, redis_conn, groups):
    svc = app.extensions[EXTENSION]
    labels = ("github", "issues", "queued")
    good = [Entry(values(f"fine-{i}"), labels) for i in range(2)]
    refused = Entry(values("no-event", event=None), labels)  # the column is NOT NULL
    intake_group._write(svc, [good[0], refused, good[1]])

    assert groups == [3, 1, 1, 1]  # the group, then each row alone
    assert [e.outcome for e in good] == ["queued", "queued"]
    assert refused.outcome == "failed" and refused.error is not None
    assert [r.delivery_id for r in stored(settings)] == ["fine-0", "fine-1"]
    queue = Queue(settings.queue_name, connection=redis_conn)
    assert sorted(queue.job_ids) == sorted(job_id(e.row_id) for e in good)


def test_redis_down_leaves_the_whole_group_stored_and_pending(app, settings, groups):
    svc = app.extensions[EXTENSION]
    svc.settings = dataclasses.replace(settings, redis_url="redis://127.0.0.1:1/0")
    svc._redis = svc._queue = svc._job_script = None
    entries = [Entry(values(f"no-redis-{i}"), ("github", "issues", "queued")) for i in range(3)]
    intake_group._write(svc, entries)

    assert groups == [3]
    assert {e.outcome for e in entries} == {"pending"}
    assert {e.redis_error for e in entries} == {"ConnectionError"}
    assert [(r.status, r.attempts, r.queued_at) for r in stored(settings)] == [
        ("pending", 0, None)
    ] * 3


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sqlite_write_lock_held_elsewhere_is_waited_for_then_refused(client, settings, monkeypatch):
    path = settings.database_url.removeprefix("sqlite:///")
    body = fixture_bytes("github/issues.opened.json")
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process's writer holds the lock
    threading.Timer(0.3, lambda: other.execute("COMMIT")).start()
    t0 = time.monotonic()
    first = client.post("/webhooks/github", data=body, headers=github_headers("issues", body))
    assert (first.status_code, first.json["status"]) == (202, "queued")
    assert time.monotonic() - t0 >= 0.25  # it waited for the lock

    monkeypatch.setattr(intake_rows, "SQLITE_BUSY_TIMEOUT_MS", 200)
    other.execute("BEGIN IMMEDIATE")
    try:
        headers = github_headers("issues", body, delivery="while-locked")
        refused = client.post("/webhooks/github", data=body, headers=headers)
        assert refused.status_code == 503
        assert refused.json["error"] == "database_unavailable"
    finally:
        other.execute("COMMIT")
        other.close()
    retried = client.post("/webhooks/github", data=body, headers=headers)
    assert (retried.status_code, retried.json["status"]) == (202, "queued")
    assert len(stored(settings)) == 2


def test_a_copy_in_the_same_group_shares_its_originals_fate(app, settings, redis_conn, groups):
    svc = app.extensions[EXTENSION]
    labels = ("github", "issues", "queued")
    kept, kept_copy = (Entry(values("twice"), labels) for _ in range(2))
    # A copy is answered `duplicate` only once its original is stored: never for a row that
    # is not there, or its sender would not send it again.
    refused, refused_copy = (Entry(values("twice-refused", event=None), labels) for _ in range(2))
    intake_group._write(svc, [kept, refused, kept_copy, refused_copy])

    assert groups == [2, 1, 1]  # one row per delivery, then each alone
    assert (kept.outcome, kept_copy.outcome) == ("queued", "duplicate")
    assert (refused.outcome, refused_copy.outcome) == ("failed", "failed")
    assert refused_copy.error is refused.error
    assert [r.delivery_id for r in stored(settings)] == ["twice"]
    assert Queue(settings.queue_name, connection=redis_conn).job_ids == [job_id(kept.row_id)]


class Killed(BaseException):
    """What a greenlet killed at shutdown raises where it waits."""


class KilledOnWaking(threading.Event):
    def wait(self, timeout=None):
        super().wait(timeout)
        raise Killed


class HeldGroup:
    """A Group whose first write is held open until `release`, with a writer of our own in
    place of the database: each group's deliveries are recorded, and its requests `queued`
    (the first group fails instead when `fails`)."""

    def __init__(self, monkeypatch, fails: bool = False):
        self.written: list[list[str]] = []
        self.release = threading.Event()
        self.fails = fails
        self.group = intake_group.Group(svc=None)
        self.outcomes: dict[str, object] = {}
        monkeypatch.setattr(intake_group, "_write", self._write)

    def _write(self, _svc, batch):
        self.written.append([e.values["delivery_id"] for e in batch])
        if len(self.written) == 1:
            self.release.wait(5)
            if self.fails:
                raise RuntimeError("a bug in the writer")
        for entry in batch:
            entry.outcome = "queued"

    def _run(self, entry: Entry) -> None:
        name = entry.values["delivery_id"]
        try:
            self.outcomes[name] = self.group.write(entry).outcome
        except (Killed, RuntimeError) as exc:
            self.outcomes[name] = type(exc).__name__

    def run(self, entries: list[Entry]) -> None:
        """The first request leads and is held; the others arrive one by one and wait; then
        the first write is released and every request must finish."""
        threads = [threading.Thread(target=self._run, args=(e,), daemon=True) for e in entries]
        threads[0].start()
        until(lambda: self.written)
        for count, thread in enumerate(threads[1:], start=1):
            thread.start()
            until(lambda count=count: len(self.group._waiting) >= count)
        self.release.set()
        for thread in threads:
            thread.join(5)
            assert not thread.is_alive()
        assert self.group._waiting == [] and self.group._busy is False


def until(condition) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.005)


def entries(*names: str) -> list[Entry]:
    return [Entry(values(name), ("github", "issues", "queued")) for name in names]


def test_a_request_stopped_while_it_waits_hands_its_turn_on(monkeypatch):
    """The request handed the next group is killed as it wakes (a greenlet at shutdown): the
    request after it writes instead, and no later request waits for ever."""
    held = HeldGroup(monkeypatch)
    first, doomed, last = entries("first", "doomed", "last")
    doomed.done = KilledOnWaking()
    held.run([first, doomed, last])
    assert held.outcomes == {"first": "queued", "doomed": "Killed", "last": "queued"}
    assert held.written == [["first"], ["last"]]


def test_a_writer_that_fails_still_frees_its_group_and_the_next(monkeypatch):
    held = HeldGroup(monkeypatch, fails=True)
    held.run(entries("e0", "e1", "e2"))
    # The failed writer's own request fails (a 500); the others form the next group.
    assert held.outcomes == {"e0": "RuntimeError", "e1": "queued", "e2": "queued"}
    assert held.written == [["e0"], ["e1", "e2"]]
