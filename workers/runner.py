"""Long-running processes: the RQ worker and the cron scheduler."""

from __future__ import annotations

from rq import Worker

from trackrecord.config import Settings
from trackrecord.logs import get_logger
from trackrecord.queue import WORKER_HEARTBEAT_SECONDS, get_queue, redis_from_url

log = get_logger("workers.runner")

# A killed worker's job is seen as lost WORKER_STALE_SECONDS after its last beat; relaying every
# 20 s puts it back on the queue within a minute of the kill (issue 8).
RELAY_EVERY_SECONDS = 20


class TrackrecordWorker(Worker):
    """An RQ worker that also relays: after RQ's own registry clean-up (which retries or fails
    jobs whose worker died), it re-enqueues deliveries Redis lost or never had.

    It beats every WORKER_HEARTBEAT_SECONDS while it runs a job (RQ's default is 30 s), so that
    relay, which the scheduler runs every minute, can tell a killed worker's job from a running
    one within WORKER_STALE_SECONDS of the kill (trackrecord.queue.job_is_live)."""

    def __init__(self, *args, job_monitoring_interval: int = WORKER_HEARTBEAT_SECONDS, **kwargs):
        super().__init__(*args, job_monitoring_interval=job_monitoring_interval, **kwargs)

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
    from workers.postback import relay_postbacks
    from workers.reconcile import reconcile_all
    from workers.relay import relay_pending

    redis = redis_from_url(settings.redis_url)
    cron = CronScheduler(connection=redis)
    cron.register(relay_pending, queue_name=settings.queue_name, interval=RELAY_EVERY_SECONDS)
    # Comments whose job Redis lost, or whose worker died mid-post: the workers relay them at
    # start and in maintenance too, but a quiet worker may not pass by for a while.
    cron.register(relay_postbacks, queue_name=settings.queue_name, interval=60)
    # Reconciling may wait out a rate limit and re-read changed items: give it most of the hour.
    cron.register(
        reconcile_all, queue_name=settings.queue_name, cron="17 * * * *", job_timeout=3000
    )
    cron.register(settle_overdue_job, queue_name=settings.queue_name, cron="*/15 * * * *")
    return cron
