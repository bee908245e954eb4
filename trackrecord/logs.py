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
        if _SECRET_KEY.search(key):
            event_dict[key] = REDACTED
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
