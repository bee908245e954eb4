"""Structured logs (structlog): one event name per line, keys for the rest, never a secret."""

from __future__ import annotations

import logging
import re
import sys

import structlog

# Any key that smells of a credential is masked, wherever a caller put it.
_SECRET_KEY = re.compile(
    r"secret|token|password|passwd|authorization|signature|api_key|private", re.I
)
REDACTED = "[redacted]"


def redact(_logger, _method, event_dict: dict) -> dict:
    for key in list(event_dict):
        if isinstance(key, str) and _SECRET_KEY.search(key):
            event_dict[key] = REDACTED
        elif isinstance(event_dict[key], dict):  # headers and the like, one level down too
            event_dict[key] = redact(None, None, dict(event_dict[key]))
    return event_dict


def add_job(_logger, _method, event_dict: dict) -> dict:
    """Inside an RQ job every line names the job, so a delivery's lines (its job id is
    `delivery-<row>`) can be followed from intake to the ledger. RQ keeps the running job in a
    context variable; outside a job, or in a process without RQ, nothing is added."""
    rq_job = sys.modules.get("rq.job")
    if rq_job is not None and "job" not in event_dict:
        job = rq_job.get_current_job()
        if job is not None:
            event_dict["job"] = job.id
    return event_dict


def configure(*, json: bool | None = None, level: int = logging.INFO) -> None:
    """JSON lines when not on a terminal (production), readable columns on one."""
    if json is None:
        json = not sys.stderr.isatty()
    renderer = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_job,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        # Looked up on each use, so a replaced sys.stderr (tests, daemons) is honoured.
        logger_factory=lambda *_: structlog.PrintLogger(sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str | None = None):
    return structlog.get_logger(name)
