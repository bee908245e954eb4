"""The RQ plumbing: a Redis that fails fast, the queue, and whether Redis still holds a job.

What goes on the queue, and how it is retried, is the workers' business (workers.enqueue)."""

from __future__ import annotations

from datetime import UTC, datetime

from redis import Redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from rq.utils import utcparse
from rq.worker import BaseWorker

# A busy worker's heartbeat: its parent process beats every WORKER_HEARTBEAT_SECONDS while its
# work horse runs a job (RQ's default is 30 s, and its worker key then outlives the worker by a
# minute more). A started job whose worker has not beaten for WORKER_STALE_SECONDS (three
# beats) lost its worker, say to a SIGKILL or a lost machine: relay runs it again.
WORKER_HEARTBEAT_SECONDS = 10
WORKER_STALE_SECONDS = 30


def redis_from_url(url: str, *, fast: bool = False) -> Redis:
    # The web process must answer even when Redis is gone: a short connect timeout turns a dead
    # Redis into an immediate error (the delivery is then kept as pending), not a hung request.
    if fast:
        return Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
    return Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)


def get_queue(redis: Redis, name: str) -> Queue:
    return Queue(name, connection=redis)


# States in which Redis still holds the job and will run (or is running) it.
LIVE_STATES = {
    JobStatus.QUEUED,
    JobStatus.STARTED,
    JobStatus.SCHEDULED,
    JobStatus.DEFERRED,
    JobStatus.RATE_LIMITED,
    JobStatus.READY_TO_ENQUEUE,
}

_LIVE_VALUES = {state.value for state in LIVE_STATES}  # as Redis holds them


def live_jobs(redis: Redis, job_ids: list[str], *, stale_after: float | None = None) -> set[str]:
    """The jobs Redis holds and will run, or that a living worker runs now, read in one round
    trip (relay reads hundreds of rows a page). A job left `started` by a dead worker is not
    live: nothing will ever finish it. Nor is a hash without `data`, one Redis lost half of:
    RQ could not load it."""
    with redis.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hmget(Job.key_for(job_id), "status", "data", "worker_name")
        found = pipe.execute()
    stale_after = WORKER_STALE_SECONDS if stale_after is None else stale_after
    alive: dict[str | None, bool] = {}
    live = set()
    for job_id, (status, data, worker) in zip(job_ids, found, strict=True):
        state = status.decode() if status and data else None
        if state == JobStatus.STARTED.value:
            name = worker.decode() if worker else None
            if name not in alive:
                alive[name] = worker_is_alive(redis, name, stale_after)
            if alive[name]:
                live.add(job_id)
        elif state in _LIVE_VALUES:
            live.add(job_id)
    return live


def worker_is_alive(redis: Redis, worker_name: str | None, stale_after: float) -> bool:
    """The worker's key is still in Redis and its last heartbeat is recent. The key alone is
    not enough: it expires only a minute or more after the last heartbeat."""
    if not worker_name:
        return False
    beat = redis.hget(BaseWorker.redis_worker_namespace_prefix + worker_name, "last_heartbeat")
    if not beat:
        return False
    try:
        last = utcparse(beat.decode())
    except ValueError:
        return False
    if last.tzinfo is None:
        last = last.replace(tzinfo=UTC)
    return (datetime.now(UTC) - last).total_seconds() < stale_after


def forget_executions(redis: Redis, queue: Queue, job_id: str) -> int:
    """Drop a job's entries from the queue's started registry before it is enqueued again.

    An entry there is `<job id>:<execution id>`. Left behind by a dead worker, it would expire
    later and RQ's registry clean-up would then take the job, by then run again under the same
    id and perhaps running, for the abandoned one, and retry it or fail it a second time."""
    registry = StartedJobRegistry(queue.name, connection=redis)
    stale = list(redis.zscan_iter(registry.key, match=f"{job_id}:*"))
    if stale:
        redis.zrem(registry.key, *(member for member, _score in stale))
    return len(stale)


# Take up to ARGV[2] waiting jobs whose ids start with ARGV[1] from the head of the queue
# (looking at no more than ARGV[3] entries), in one atomic step: off the list, so no other
# worker dequeues them, and marked `started` by worker ARGV[5], so that relay sees them live
# while that worker beats and lost once it stops (`live_jobs`), as it sees a job RQ started.
# Their hashes expire in a day in any case. Ids with a key under ARGV[4] are left alone: they
# must run as their own job.
_TAKE = """
local taken = {}
local limit = tonumber(ARGV[2])
for _, id in ipairs(redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1)) do
  if #taken >= limit then break end
  if string.sub(id, 1, #ARGV[1]) == ARGV[1] and redis.call('EXISTS', ARGV[4] .. id) == 0 then
    redis.call('LREM', KEYS[1], 1, id)
    redis.call('HSET', KEYS[2] .. id, 'status', 'started', 'worker_name', ARGV[5])
    redis.call('EXPIRE', KEYS[2] .. id, 86400)
    taken[#taken + 1] = id
  end
end
return taken
"""
ALONE_PREFIX = "trackrecord:alone:"


def take_waiting(redis: Redis, queue: Queue, prefix: str, limit: int, worker: str) -> list[str]:
    """The ids of up to `limit` jobs named `prefix...` waiting at the head of `queue`, taken
    off it for `worker`: the caller owns them now, puts back (enqueues again) any it does not
    finish, and drops the others (`drop_taken`)."""
    if limit <= 0:
        return []
    ids = redis.eval(
        _TAKE,
        2,
        queue.key,
        Job.redis_job_namespace_prefix,
        prefix,
        limit,
        limit * 4,
        ALONE_PREFIX,
        worker,
    )
    return [i.decode() if isinstance(i, bytes) else i for i in ids]


def drop_taken(redis: Redis, job_ids: list[str]) -> None:
    """The taken jobs are done with: their hashes go (relay reads the database, not them)."""
    if job_ids:
        redis.delete(*(Job.key_for(i) for i in job_ids))


def run_alone(redis: Redis, job_id: str, seconds: int = 24 * 3600) -> None:
    """The job failed inside a batch: from now on it is not taken into one (take_waiting), so
    it fails, is retried and lands in the failed registry as its own job."""
    redis.set(ALONE_PREFIX + job_id, 1, ex=seconds)
