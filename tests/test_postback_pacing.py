"""Comments under load and persistent faults (issue 9), through Flask and a real RQ worker:
posts are paced under the platform's content-creation limits (the ones over the limit wait for
the next window, scheduled, without counting an attempt), and a 5xx that never ends is retried
by RQ with backoff and then recorded as failed, with nothing posted."""

from __future__ import annotations

from datetime import UTC, datetime

from rq import Queue, Retry

from ledger.codec import utc
from tests import ledger_helpers as h
from tests import test_postbacks
from tests.test_postbacks import DUE, closed, deliver, promised, reply, rows
from workers import postback

gh = test_postbacks.gh  # the stand-in for GitHub's API, as a fixture of this module too


def test_a_burst_is_paced_under_the_content_creation_limit(
    client,
    settings,
    redis_conn,
    gh,
    monkeypatch,
):
    monkeypatch.setattr(postback, "PACE", {"github": ((3600, 2),)})  # 2 an hour, for the test
    deliver(client, settings, redis_conn, *[promised(n) for n in (1, 2, 3, 4)])
    deliver(client, settings, redis_conn, *[closed(n, DUE) for n in (1, 2, 3, 4)])
    assert len(gh.posts) == 2
    found = rows(settings)
    posted = [r for r in found if r.status == "posted"]
    waiting = [r for r in found if r.status == "pending"]
    assert (len(posted), len(waiting)) == (2, 2)
    window_end = (int(datetime.now(UTC).timestamp()) // 3600 + 1) * 3600
    for row in waiting:
        # Nothing was sent: not an attempt. The job waits for the next window.
        assert (row.attempts, row.error) == (0, "paced")
        assert utc(row.not_before) == datetime.fromtimestamp(window_end, UTC)
    scheduled = Queue(settings.queue_name, connection=redis_conn).scheduled_job_registry
    assert sorted(scheduled.get_job_ids()) == sorted(
        f"postback-{r.id}-at-{window_end}" for r in waiting
    )


def test_a_5xx_that_never_ends_is_retried_then_recorded_as_failed(
    client,
    settings,
    redis_conn,
    gh,
    monkeypatch,
):
    monkeypatch.setattr(postback, "JOB_RETRY", Retry(max=2))  # no wait between tries, for the test
    for _ in range(3):  # one answer per try: the first and both retries
        gh.faults.append(
            (lambda r: r.method == "POST", lambda r: reply({"message": "bad gateway"}, 502))
        )
    deliver(client, settings, redis_conn, promised(1), closed(1, DUE))
    (row,) = rows(settings)
    assert (row.status, row.attempts) == ("failed", 3)
    assert "502" in row.error
    assert gh.faults == [] and gh.posts == []
    failed = Queue(settings.queue_name, connection=redis_conn).failed_job_registry
    assert failed.get_job_ids() == [f"postback-{row.id}"]
    # Retried by hand later (the CLI's --retry), its marker is looked for first, then posted.
    assert postback.retry(row.id)
    h.run_worker(settings, redis_conn)
    assert [r.status for r in rows(settings)] == ["posted"] and len(gh.posts) == 1
