"""What the views need (settings, sessions, Redis and the queue), built once per process and
kept in `app.extensions`; `services()` reaches it from inside a request."""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import current_app
from redis import Redis
from rq import Queue
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from trackrecord.config import Settings
from trackrecord.db import get_engine
from trackrecord.job_script import JobScript, JobShapeChanged
from trackrecord.logs import get_logger
from trackrecord.queue import get_queue, redis_from_url
from webhook_app.intake_group import Group
from workers.enqueue import enqueue_delivery

log = get_logger("webhook_app")

EXTENSION = "trackrecord"


@dataclass
class Services:
    settings: Settings
    sessions: sessionmaker[Session]
    _redis: Redis | None = field(default=None, repr=False)
    _queue: Queue | None = field(default=None, repr=False)
    _writer: Engine | None = field(default=None, repr=False)
    _job_script: JobScript | bool | None = field(default=None, repr=False)
    # Made with the app, in the gunicorn worker after gevent has patched `threading`: its
    # requests then wait on it cooperatively. One a process: it is also what lets only one of
    # them write at a time (SQLite takes one writer).
    group: Group = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.group = Group(self)

    def writer(self) -> Engine:
        """The intake's insert runs alone in its own transaction: in autocommit it is committed
        when the statement returns, one round trip on PostgreSQL instead of BEGIN, INSERT and
        COMMIT. Its own pool, made on first use in the serving process."""
        if self._writer is None:
            self._writer = get_engine(self.settings.database_url, autocommit=True)
        return self._writer

    def redis(self) -> Redis:
        if self._redis is None:
            self._redis = redis_from_url(self.settings.redis_url, fast=True)
        return self._redis

    def queue(self) -> Queue:
        # One Queue per process, like the Redis client and its connection pool.
        if self._queue is None:
            self._queue = get_queue(self.redis(), self.settings.queue_name)
        return self._queue

    def job_script(self) -> JobScript | None:
        """A delivery's job written in one Redis command (trackrecord.job_script), made from
        what `enqueue_delivery` writes; None when RQ writes a job the script cannot (then RQ's
        own enqueue, as before). RedisError when Redis does not answer: tried again next time."""
        if self._job_script is None:
            queue = self.queue()
            try:
                self._job_script = JobScript.build(
                    self.redis(), lambda pipe, n: enqueue_delivery(queue, n, pipeline=pipe)
                )
            except JobShapeChanged as exc:
                log.warning("webhook.job_script_unavailable", reason=str(exc))
                self._job_script = False
        return self._job_script or None


def services() -> Services:
    return current_app.extensions[EXTENSION]
