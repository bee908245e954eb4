"""What the views need (settings, sessions, Redis and the queue), built once per process and
kept in `app.extensions`; `services()` reaches it from inside a request."""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager, nullcontext
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
    _group: Group | None = field(default=None, repr=False)
    # Made when the app is built, in the gunicorn worker after gevent has patched `threading`:
    # then waiting for it lets the other greenlets run.
    _write_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

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

    def group(self) -> Group:
        """The intake's group commit (webhook_app.intake_group): made on first use, in the
        serving process, after gevent has patched `threading`."""
        if self._group is None:
            self._group = Group(self)
        return self._group

    def one_writer(self) -> AbstractContextManager:
        """Around a write on SQLite, which takes one writer at a time: the requests of this
        process queue here, where a gevent worker's other greenlets go on running, rather than
        in SQLite's busy handler, which sleeps the whole process. PostgreSQL needs none."""
        if self.settings.database_url.startswith("sqlite"):
            return self._write_lock
        return nullcontext()


def services() -> Services:
    return current_app.extensions[EXTENSION]
