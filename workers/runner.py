"""Long-running processes: the RQ worker and the cron scheduler."""

from __future__ import annotations

import signal
import threading
import time

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from rq import SimpleWorker
from rq.exceptions import StopRequested
from rq.timeouts import JobTimeoutException

from trackrecord.config import Settings
from trackrecord.logs import get_logger
from trackrecord.queue import WORKER_HEARTBEAT_SECONDS, get_queue, redis_from_url
from workers import jobs

log = get_logger("workers.runner")

# A killed worker's job is seen as lost WORKER_STALE_SECONDS after its last beat; relaying every
# 20 s puts it back on the queue within a minute of the kill (issue 8).
RELAY_EVERY_SECONDS = 20
# After SIGTERM, the job in hand has this long to finish before it is given up and requeued: a
# batch stops after its delivery in hand (workers.jobs.STOP), so only a delivery waiting on a
# lock or a long job (reconciling, a report) gets near it. Under Kubernetes' default grace
# period (30 s), with room for the exit.
STOP_GRACE_SECONDS = 20
# An idle worker waits for a job this many seconds at a time, and sees a stop between waits.
WAIT_SLICE_SECONDS = 1
# After the worker quit on an error (run_worker), this long before a new one starts.
RESTART_SECONDS = 2


class ShutdownNow(JobTimeoutException):
    """Raised in the job in hand at a second SIGTERM, or STOP_GRACE_SECONDS after the first. A
    JobTimeoutException, so a batch takes it as running out of time: the transaction in hand
    rolls back, and its delivery goes back on the queue with the rest (workers.jobs.Batch)."""


class TrackrecordWorker(SimpleWorker):
    """An RQ worker that also relays: after RQ's own registry clean-up (which retries or fails
    jobs whose worker died), it re-enqueues deliveries Redis lost or never had.

    It runs jobs in its own process, without RQ's default fork of a work horse per job: the
    fork, and the configuration, engine and connections each horse built again, cost more than
    a delivery (issue 11). Job timeouts still hold (SIGALRM in this process). A thread beats
    every WORKER_HEARTBEAT_SECONDS while a job runs (a forking worker's parent did; RQ's
    SimpleWorker beats only between jobs), so that relay can tell a killed worker's job from a
    running one within WORKER_STALE_SECONDS of the kill (trackrecord.queue.live_jobs).

    SIGTERM (or SIGINT) stops it without losing or doubling work, whatever it is doing. RQ's
    own handler raised in the middle of whatever ran while the worker was not busy (a relay,
    which swallowed it, so the worker never stopped; or a dequeue, whose job then sat in RQ's
    intermediate queue for minutes); it let a busy worker finish its whole batch; and its
    second signal raised SystemExit inside the job, recorded as a failed attempt, while the
    deliveries the batch had taken waited for relay. Here the signal only sets flags: a batch
    stops after the delivery in hand and puts the rest back on the queue (workers.jobs.STOP);
    an idle worker sees the stop within WAIT_SLICE_SECONDS; the worker exits 0. A second
    signal, or STOP_GRACE_SECONDS, gives the job in hand up (ShutdownNow) and puts it back at
    the front of the queue, not counted as an attempt (handle_job_failure)."""

    relay_at_start = False  # run_worker: the first relay also takes the youngest deliveries
    _job = None  # the job in hand
    _performing = False  # between its start and its end: where ShutdownNow may be raised
    _abandoned: str | None = None
    _grace: threading.Timer | None = None

    @property
    def stopping(self) -> bool:
        return self._stop_requested or jobs.STOP.is_set()

    def execute_job(self, job, queue):
        stop = threading.Event()
        beat = threading.Thread(
            target=self._beat, args=(stop, self.get_heartbeat_ttl(job)), daemon=True
        )
        beat.start()
        self._job = job
        try:
            super().execute_job(job, queue)
        finally:
            self._job, self._performing = None, False
            stop.set()
            beat.join()

    def _beat(self, stop: threading.Event, ttl: int) -> None:
        while not stop.wait(WORKER_HEARTBEAT_SECONDS):
            try:
                self.heartbeat(ttl)
            except Exception as exc:  # Redis away for a moment: the next beat tries again
                log.warning("worker.heartbeat_failed", error=type(exc).__name__)

    def run_maintenance_tasks(self):
        if self._stop_requested:
            raise StopRequested()  # not a relay started on the way out
        super().run_maintenance_tasks()
        first, self.relay_at_start = self.relay_at_start, False
        _relay_quietly(min_age_seconds=0 if first else None)

    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):
        if timeout is None or max_idle_time is not None:  # burst, or RQ's idle limit
            return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        while not self._stop_requested:
            slice_ = min(timeout, WAIT_SLICE_SECONDS)
            result = super().dequeue_job_and_maintain_ttl(slice_, slice_)
            if result is not None:
                return result
        raise StopRequested()

    def heartbeat(self, timeout=None, pipeline=None):
        try:
            return super().heartbeat(timeout, pipeline)
        except RedisConnectionError:
            # RQ's dequeue retries a lost Redis in a loop of its own, beating first each time,
            # deaf to a stop: a worker told to stop while Redis was away (Ctrl-C on `trackrecord
            # up`, whose Redis stops first) waited for its SIGKILL. Idle, it has nothing to lose.
            idle = self._job is None and threading.current_thread() is threading.main_thread()
            if self._stop_requested and idle:
                raise StopRequested() from None
            raise

    # The signal handlers: flags only, no Redis call and no log line (the main thread may be
    # in the middle of either).
    def _install_signal_handlers(self):
        super()._install_signal_handlers()
        if jobs.STOP.is_set():  # asked before this worker listened (run_worker's restart)
            self._stop_requested = True

    def request_stop(self, signum, frame):
        jobs.STOP.set()
        self._stop_requested = True
        signal.signal(signal.SIGINT, self.request_force_stop)
        signal.signal(signal.SIGTERM, self.request_force_stop)
        self._grace = threading.Timer(
            STOP_GRACE_SECONDS, signal.pthread_kill, (threading.main_thread().ident, signum)
        )
        self._grace.daemon = True
        self._grace.start()

    def request_force_stop(self, signum, frame):
        if self._job is None:
            raise SystemExit(0)  # idle and still not out: say, waiting for Redis to come back
        if self._performing:
            self._abandoned = self._job.id
            raise ShutdownNow(f"worker stopping: job {self._job.id} given up, requeued")
        # Else its bookkeeping, a few Redis calls, and the worker exits right after.

    def prepare_job_execution(self, job, remove_from_intermediate_queue=False):
        super().prepare_job_execution(job, remove_from_intermediate_queue)
        self._performing = True

    def handle_execution_ended(self, job, queue, heartbeat_ttl):
        self._performing = False
        super().handle_execution_ended(job, queue, heartbeat_ttl)

    def handle_job_failure(
        self, job, queue, started_job_registry=None, exc_string="", execution=None
    ):
        if job.id != self._abandoned:
            return super().handle_job_failure(
                job, queue, started_job_registry, exc_string, execution
            )
        # Given up at shutdown, not failed: back on the queue, first in line for the next
        # worker, no attempt counted. Its work was all or nothing (a delivery's transaction).
        with self.connection.pipeline() as pipeline:
            self.cleanup_execution(job, pipeline=pipeline, execution=execution)
            pipeline.execute()
        queue.enqueue_job(job, at_front=True)
        log.warning("worker.job_requeued", job=job.id)

    def teardown(self):
        if self._grace is not None:
            self._grace.cancel()
        if self._stop_requested:
            log.info("worker.stopped", worker=self.name, requeued=self._abandoned)
        try:
            super().teardown()
        except RedisError as exc:  # Redis away: its keys expire on their own
            log.warning("worker.teardown_failed", error=type(exc).__name__)


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
    # Until a worker listens (and between two): a stop is noted, and honoured at once.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: jobs.STOP.set())
    while not jobs.STOP.is_set():
        worker = TrackrecordWorker([queue], connection=redis, maintenance_interval=120)
        # At start (its first maintenance, once it answers signals): anything stored while no
        # worker (or no Redis) was around goes on the queue.
        worker.relay_at_start = True
        try:
            worked = worker.work(burst=burst, with_scheduler=True)
        except RedisError as exc:  # Redis away at its start (registration)
            worked = False
            log.warning("worker.start_failed", error=type(exc).__name__)
        if burst or worker.stopping:
            return worked
        # RQ's worker quits on an error outside a job's own code, say Redis gone while it
        # recorded a job's end. Here a new one takes over (a fresh name; relay puts back what
        # Redis lost), rather than the process ending: under `trackrecord up` that would stop
        # the web and the scheduler too.
        time.sleep(RESTART_SECONDS)
        log.warning("worker.restarting", previous=worker.name)
    return False


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
