"""The fields of a Jira payload the handlers read, and their shapes.

`parse(payload)` validates them and returns a clean copy holding only these fields; the issue's
`fields` keep their custom fields as sent, because their ids and shapes differ per site (the
sprint field is a list of objects on Cloud and of strings on Server, the story points field a
number or absent): the handlers read those defensively and ignore what they do not recognise,
so they are never a reason to fail. A payload that does not fit raises `InvalidPayload`.
Payload reference: https://developer.atlassian.com/server/jira/platform/webhooks/
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, ConfigDict, Field, StringConstraints, conint, model_validator

from connectors.shapes import (
    JIRA_ISSUE,
    JIRA_PROJECT,
    Day,
    Instant,
    InvalidPayload,
    NumericId,
    SelfUrl,
    Shape,
    text,
    validated,
)


def _upper(value: Any) -> Any:
    # Jira keys are upper case by rule; one spelling for the item key whatever was sent.
    return value.upper() if isinstance(value, str) else value


def _text_id(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


IssueKey = Annotated[
    str, BeforeValidator(_upper), StringConstraints(max_length=120, pattern=f"^{JIRA_ISSUE}$")
]
ProjectKey = Annotated[
    str, BeforeValidator(_upper), StringConstraints(max_length=100, pattern=f"^{JIRA_PROJECT}$")
]
# Changelog values: ids or text as strings (some sites send numbers).
ChangeValue = Annotated[str, BeforeValidator(_text_id), StringConstraints(max_length=65_536)]
# `timestamp`: when Jira fired the webhook, in ms since the epoch (before the year 3000).
Millis = conint(strict=True, ge=0, lt=32_503_680_000_000)


class User(Shape):
    # Cloud identifies people by accountId; Server and Data Center by name.
    accountId: text(128) | None = None
    name: text(255) | None = None


class Project(Shape):
    key: ProjectKey


class FixVersion(Shape):
    id: NumericId
    name: text(255) | None = None
    releaseDate: Day | None = None
    self_: SelfUrl | None = Field(None, alias="self")


class Resolution(Shape):
    name: text(255) | None = None


class StatusCategory(Shape):
    key: text(64) | None = None


class Status(Shape):
    name: text(255) | None = None
    statusCategory: StatusCategory | None = None


class Fields(Shape):
    # Custom fields (customfield_*) stay as sent: their shape is the site's.
    model_config = ConfigDict(extra="allow")

    project: Project | None = None
    summary: text(1024) | None = None
    created: Instant | None = None
    updated: Instant | None = None
    duedate: Day | None = None
    fixVersions: list[FixVersion] | None = None
    resolution: Resolution | None = None
    resolutiondate: Instant | None = None
    status: Status | None = None
    reporter: User | None = None


class Issue(Shape):
    key: IssueKey
    self_: SelfUrl | None = Field(None, alias="self")
    fields: Fields | None = None

    @model_validator(mode="after")
    def _key_in_its_project(self) -> Issue:
        # The intake routes by fields.project.key: an issue key of another project would let one
        # project's webhook write another project's item.
        project = self.fields.project if self.fields else None
        if project is not None and self.key.rsplit("-", 1)[0] != project.key:
            raise ValueError("the issue key is not in fields.project.key")
        return self


class ChangeItem(Shape):
    field: text(255) | None = None
    fieldId: text(255) | None = None
    from_: ChangeValue | None = Field(None, alias="from")
    to: ChangeValue | None = None
    fromString: ChangeValue | None = None
    toString: ChangeValue | None = None


class Changelog(Shape):
    items: list[ChangeItem] | None = None


class Comment(Shape):
    created: Instant | None = None
    author: User | None = None


class Version(Shape):
    id: NumericId
    # Required: version ids are numbered per site, and only this link says which site.
    self_: SelfUrl = Field(alias="self")
    name: text(255) | None = None
    releaseDate: Day | None = None


class Sprint(Shape):
    id: NumericId
    self_: SelfUrl = Field(alias="self")  # as for versions: the site
    name: text(255) | None = None
    state: text(32) | None = None
    startDate: Instant | None = None
    endDate: Instant | None = None


class Payload(Shape):
    webhookEvent: text(128)
    issue_event_type_name: text(128) | None = None
    timestamp: Millis | None = None
    user: User | None = None
    issue: Issue | None = None
    changelog: Changelog | None = None
    comment: Comment | None = None
    version: Version | None = None
    sprint: Sprint | None = None


# What each event must carry.
REQUIRED: dict[str, tuple[str, ...]] = {
    "jira:issue_created": ("issue", "issue.fields"),
    "jira:issue_updated": ("issue", "issue.fields"),
    "jira:issue_deleted": ("issue",),
    "comment_created": ("issue", "comment"),
    "jira:version_updated": ("version",),
    "sprint_updated": ("sprint",),
    "sprint_started": ("sprint",),
}


def parse(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise InvalidPayload("payload: not a JSON object")
    model = validated(Payload, payload)
    for dotted in REQUIRED.get(model.webhookEvent, ()):
        value: Any = model
        for name in dotted.split("."):
            value = getattr(value, name)
        if value is None:
            raise InvalidPayload(f"{dotted}: required for a {model.webhookEvent} event")
    return model.model_dump(by_alias=True, exclude_unset=True)
