"""Long-running processes: the RQ worker and the cron scheduler."""

from __future__ import annotations

import threading

from rq import SimpleWorker

from trackrecord.config import Settings
from trackrecord.logs import get_logger
from trackrecord.queue import WORKER_HEARTBEAT_SECONDS, get_queue, redis_from_url

log = get_logger("workers.runner")

# A killed worker's job is seen as lost WORKER_STALE_SECONDS after its last beat; relaying every
# 20 s puts it back on the queue within a minute of the kill (issue 8).
RELAY_EVERY_SECONDS = 20


class TrackrecordWorker(SimpleWorker):
    """An RQ worker that also relays: after RQ's own registry clean-up (which retries or fails
    jobs whose worker died), it re-enqueues deliveries Redis lost or never had.

    It runs jobs in its own process, without RQ's default fork of a work horse per job: the
    fork, and the configuration, engine and connections each horse built again, cost more than
    a delivery (issue 11). Job timeouts still hold (SIGALRM in this process). A thread beats
    every WORKER_HEARTBEAT_SECONDS while a job runs (a forking worker's parent did; RQ's
    SimpleWorker beats only between jobs), so that relay can tell a killed worker's job from a
    running one within WORKER_STALE_SECONDS of the kill (trackrecord.queue.job_is_live)."""

    def execute_job(self, job, queue):
        stop = threading.Event()
        beat = threading.Thread(
            target=self._beat, args=(stop, self.get_heartbeat_ttl(job)), daemon=True
        )
        beat.start()
        try:
            super().execute_job(job, queue)
        finally:
            stop.set()
            beat.join()

    def _beat(self, stop: threading.Event, ttl: int) -> None:
        while not stop.wait(WORKER_HEARTBEAT_SECONDS):
            try:
                self.heartbeat(ttl)
            except Exception as exc:  # Redis away for a moment: the next beat tries again
                log.warning("worker.heartbeat_failed", error=type(exc).__name__)

    def run_maintenance_tasks(self):
        super().run_maintenance_tasks()
        _relay_quietly(min_age_seconds=None)


def _relay_quietly(min_age_seconds: float | None) -> None:
    from workers.relay import relay_pending

    try:
        relay_pending(min_age_seconds=min_age_seconds)
    except Exception as exc:  # a relay failure must never stop the worker
        log.warning("relay.failed", error=type(exc).__name__, detail=str(exc)[:200])
    from workers.postback import relay_postbacks

    try:  # comments whose job Redis never got, or whose worker died mid-post (issue 9)
        relay_postbacks(min_age_seconds=30 if min_age_seconds is None else min_age_seconds)
    except Exception as exc:
        log.warning("postback.relay_failed", error=type(exc).__name__, detail=str(exc)[:200])
    from workers.milestone_summary import relay_summaries

    try:  # living summaries whose job was lost
        relay_summaries(min_age_seconds=60 if min_age_seconds is None else min_age_seconds)
    except Exception as exc:
        log.warning("summary.relay_failed", error=type(exc).__name__, detail=str(exc)[:200])


def run_worker(settings: Settings, *, burst: bool = False) -> bool:
    redis = redis_from_url(settings.redis_url)
    queue = get_queue(redis, settings.queue_name)
    # At start: anything stored while no worker (or no Redis) was around goes on the queue.
    _relay_quietly(min_age_seconds=0)
    worker = TrackrecordWorker([queue], connection=redis, maintenance_interval=120)
    return worker.work(burst=burst, with_scheduler=True)


def run_scheduler(settings: Settings) -> None:
    scheduler(settings).start()


def scheduler(settings: Settings):
    """RQ's cron scheduler with every recurring job registered (started by run_scheduler)."""
    from rq.cron import CronScheduler

    from workers.jobs import settle_overdue_job
    from workers.milestone_summary import relay_summaries
    from workers.postback import relay_postbacks
    from workers.reconcile import reconcile_all
    from workers.relay import relay_pending
    from workers.report_schedule import SCHEDULE_CRON, schedule_reports

    redis = redis_from_url(settings.redis_url)
    cron = CronScheduler(connection=redis)
    cron.register(relay_pending, queue_name=settings.queue_name, interval=RELAY_EVERY_SECONDS)
    # Comments whose job Redis lost, or whose worker died mid-post: the workers relay them at
    # start and in maintenance too, but a quiet worker may not pass by for a while.
    cron.register(relay_postbacks, queue_name=settings.queue_name, interval=60)
    # Living milestone summaries whose job was lost, likewise (issue 9).
    cron.register(relay_summaries, queue_name=settings.queue_name, interval=60)
    # Reconciling may wait out a rate limit and re-read changed items: give it most of the hour.
    cron.register(
        reconcile_all, queue_name=settings.queue_name, cron="17 * * * *", job_timeout=3000
    )
    cron.register(settle_overdue_job, queue_name=settings.queue_name, cron="*/15 * * * *")
    # Monthly reports due and not yet built or sent, and sends whose retry time has come.
    cron.register(schedule_reports, queue_name=settings.queue_name, cron=SCHEDULE_CRON)
    return cron
