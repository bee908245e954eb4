"""What the views need (settings, sessions, Redis and the queue), built once per process and
kept in `app.extensions`; `services()` reaches it from inside a request."""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import current_app
from redis import Redis
from rq import Queue
from sqlalchemy.orm import Session, sessionmaker

from trackrecord.config import Settings
from trackrecord.queue import get_queue, redis_from_url

EXTENSION = "trackrecord"


@dataclass
class Services:
    settings: Settings
    sessions: sessionmaker[Session]
    _redis: Redis | None = field(default=None, repr=False)

    def redis(self) -> Redis:
        if self._redis is None:
            self._redis = redis_from_url(self.settings.redis_url, fast=True)
        return self._redis

    def queue(self) -> Queue:
        return get_queue(self.redis(), self.settings.queue_name)


def services() -> Services:
    return current_app.extensions[EXTENSION]
