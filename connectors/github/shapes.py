"""The fields of a GitHub payload the handlers read, and their shapes.

`parse(event, payload, canonical)` validates them and returns a clean copy holding only these
fields (absent stays absent, null stays null, because the handlers tell the two apart), with
the repository's name in its canonical spelling. A payload that does not fit raises
`InvalidPayload` naming the field. Payload reference:
https://docs.github.com/en/webhooks/webhook-events-and-payloads
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import StringConstraints, conint, model_validator

from connectors.shapes import GITHUB_REPO, Instant, InvalidPayload, Shape, text, validated

# GitHub caps a body at 65,536 characters and a title at 256; the bounds leave room for how it
# counts them and refuse only what GitHub cannot have sent.
MAX_BODY = 262_144
MAX_TITLE = 1024

# Issue, pull request and milestone numbers: positive, and small enough for any column.
Number = conint(strict=True, gt=0, le=2**53)
RepoName = Annotated[str, StringConstraints(pattern=f"^{GITHUB_REPO}$")]


class User(Shape):
    login: text(100) | None = None


class Label(Shape):
    name: text(256) = ""


class Milestone(Shape):
    number: Number
    title: text(MAX_TITLE) | None = None
    due_on: Instant | None = None
    created_at: Instant | None = None
    updated_at: Instant | None = None


class IssuePullRequest(Shape):
    """The `pull_request` object of an issue-shaped pull request (issues, issue_comment)."""

    merged_at: Instant | None = None


class Head(Shape):
    ref: text(1024) | None = None


class Item(Shape):
    """An issue or a pull request."""

    number: Number
    created_at: Instant
    updated_at: Instant
    closed_at: Instant | None = None
    merged_at: Instant | None = None
    merged: bool | None = None
    state: text(32) | None = None
    state_reason: text(64) | None = None
    title: text(MAX_TITLE) | None = None
    body: text(MAX_BODY) | None = None
    milestone: Milestone | None = None
    labels: list[Label] | None = None
    user: User | None = None
    author_association: text(64) | None = None
    head: Head | None = None
    pull_request: IssuePullRequest | None = None

    @model_validator(mode="after")
    def _merged_has_a_time(self) -> Item:
        # A merge is dated by merged_at: `merged: true` without it would be a delivery at no time.
        if self.merged and self.merged_at is None:
            raise ValueError("merged is true but merged_at is missing")
        return self


class Comment(Shape):
    created_at: Instant
    updated_at: Instant | None = None
    user: User | None = None
    author_association: text(64) | None = None


class Repository(Shape):
    full_name: RepoName


class Payload(Shape):
    action: text(64) | None = None
    repository: Repository
    issue: Item | None = None
    pull_request: Item | None = None
    comment: Comment | None = None
    milestone: Milestone | None = None
    # Only which keys it has is read (`due_on` in it: the due date itself was edited).
    changes: dict[str, Any] | None = None
    sender: User | None = None


# What each event must carry besides the repository.
REQUIRED: dict[str, tuple[str, ...]] = {
    "issues": ("issue",),
    "pull_request": ("pull_request",),
    "issue_comment": ("issue", "comment"),
    "milestone": ("milestone",),
}


def parse(event: str, payload: Any, canonical: Callable[[str], str]) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise InvalidPayload("payload: not a JSON object")
    model = validated(Payload, payload)
    for name in REQUIRED.get(event, ()):
        if getattr(model, name) is None:
            raise InvalidPayload(f"{name}: required for a {event} event")
    if event == "milestone" and model.milestone.updated_at is None:
        raise InvalidPayload("milestone.updated_at: required for a milestone event")
    clean = model.model_dump(exclude_unset=True)
    clean["repository"]["full_name"] = canonical(model.repository.full_name)
    return clean
