"""What a connector accepts from a payload: the shapes of the fields it reads, checked before any
rule runs, and the one exception a payload that does not fit raises.

A signed payload is still untrusted text. Each connector validates exactly the fields its
handlers read (`connectors.github.shapes`, `connectors.jira.shapes`) and hands its handlers a
clean copy holding only those, so a field of the wrong type (`number: null`, a list, a dict), a
time that is not a time, or an item key that is not one stops the delivery with a reason that
names the field (`InvalidPayload`), instead of becoming an item such as `...#None`. The worker
marks such a delivery failed with that reason and changes nothing (workers/jobs.py).

Every pattern here runs in linear time: pydantic's `pattern` uses the Rust regex crate, and the
connectors match free text with RE2 (`import re2`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

import re2
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StringConstraints,
    ValidationError,
)


class InvalidPayload(ValueError):
    """A payload that does not have the shape its connector reads. Permanent: retrying the same
    bytes gives the same answer. `reason` names the field and the problem, never its value."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Shape(BaseModel):
    """A part of a payload: only the declared fields are read, anything else is left out."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidPayload(describe(exc)) from None


def describe(exc: ValidationError, limit: int = 3) -> str:
    """`issue.number: Input should be greater than 0`: the field's path and pydantic's message,
    without the offending value (it may be a whole pull request body)."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False)[:limit]:
        parts.append(f"{path(error['loc']) or 'payload'}: {error['msg']}")
    more = exc.error_count() - limit
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


def path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# Bounds: far above what GitHub and Jira send, low enough that nothing downstream (a key column
# of 300 characters, date arithmetic) can fail on a value that passed.
MIN_YEAR, MAX_YEAR = 1900, 2999
MAX_ID_DIGITS = 18


def _instant(value: str) -> str:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise ValueError("an ISO 8601 time needs a UTC offset")
    try:
        year = moment.astimezone(UTC).year
    except OverflowError:
        raise ValueError("time out of range") from None
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise ValueError(f"time out of range (years {MIN_YEAR}-{MAX_YEAR})")
    return value


def _day(value: str) -> str:
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise ValueError("not a date YYYY-MM-DD") from None
    if not MIN_YEAR <= day.year <= MAX_YEAR:
        raise ValueError(f"date out of range (years {MIN_YEAR}-{MAX_YEAR})")
    return value


def _digits(value: Any) -> Any:
    # Jira sends ids as strings ("10000") and sometimes as numbers; one text form either way.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _without_nul(value: str) -> str:
    # JSON may carry \u0000 in a title or login; PostgreSQL's text columns refuse the byte, so
    # kept it would fail every write of the item. It carries no meaning: drop it.
    return value.replace("\x00", "")


def text(max_length: int) -> Any:
    return Annotated[str, StringConstraints(max_length=max_length), AfterValidator(_without_nul)]


# An ISO 8601 time with an offset, kept as sent (the connectors parse it themselves).
Instant = Annotated[str, StringConstraints(max_length=64), AfterValidator(_instant)]
# A calendar date as Jira sends due dates and release dates.
Day = Annotated[
    str, StringConstraints(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"), AfterValidator(_day)
]
# A numeric id in its text form: Jira version ids, sprint ids.
NumericId = Annotated[
    str,
    BeforeValidator(_digits),
    StringConstraints(pattern=rf"^[1-9][0-9]{{0,{MAX_ID_DIGITS - 1}}}$"),
]


# ---- Item keys ----------------------------------------------------------------------------------

GITHUB_REPO = r"[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}"
JIRA_PROJECT = r"[A-Z][A-Z0-9_]{1,99}"
JIRA_ISSUE = rf"{JIRA_PROJECT}-[1-9][0-9]{{0,{MAX_ID_DIGITS - 1}}}"
SITE_HOST = r"[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?"
_NUMBER = rf"[1-9][0-9]{{0,{MAX_ID_DIGITS - 1}}}"

# Every key a connector puts in DomainEvent.item_key, .scope or .links.
ITEM_KEY = re2.compile(
    "^(?:"
    rf"github:{GITHUB_REPO}#{_NUMBER}"  # an issue or pull request
    rf"|github:{GITHUB_REPO}/milestone/{_NUMBER}"  # a milestone (scope)
    rf"|jira:{JIRA_ISSUE}"  # a Jira issue
    rf"|jira:{SITE_HOST}/(?:version|sprint)/{_NUMBER}"  # a fix version or sprint of one site
    ")$"
)
_JIRA_ISSUE = re2.compile(f"^{JIRA_ISSUE}$")
_SITE_HOST = re2.compile(f"^{SITE_HOST}$")


def is_item_key(key: object) -> bool:
    return isinstance(key, str) and len(key) <= 300 and ITEM_KEY.search(key) is not None


def is_jira_issue_key(key: object) -> bool:
    return isinstance(key, str) and len(key) <= 120 and _JIRA_ISSUE.search(key) is not None


def site_host(url: object) -> str | None:
    """The Jira site a `self` URL belongs to: its host name, lower case, without port or user.

    Jira sprint and version events name no project, and their ids are numbered per site, so a
    scope key needs the site too: `jira:<host>/version/<id>`. Every object in a Jira payload
    links to itself under the site's base URL, so the issue's fix versions and the version
    event agree on it. None when the value is not an http(s) URL with a plausible host.
    """
    if not isinstance(url, str) or len(url) > 2048:
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not host or len(host) > 253:
        return None
    return host if _SITE_HOST.search(host) else None


def _url(value: str) -> str:
    if site_host(value) is None:
        raise ValueError("not an http(s) URL with a host name")
    return value


# A `self` link: an http(s) URL whose host is the Jira site.
SelfUrl = Annotated[str, StringConstraints(max_length=2048), AfterValidator(_url)]


def parse_instant(value: object) -> datetime | None:
    """A time read from a field of unknown shape (a Jira custom field): the instant, or None when
    it is not an ISO 8601 time with an offset in range. Never raises."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        _instant(value)
    except ValueError:
        return None
    return datetime.fromisoformat(value)


_ID = re2.compile(rf"^{_NUMBER}$")


def numeric_id(value: object) -> str | None:
    """An id of unknown shape in its text form ("3" for 3 or "3"), or None. Never raises."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and len(value) <= MAX_ID_DIGITS and _ID.search(value):
        return value
    return None
