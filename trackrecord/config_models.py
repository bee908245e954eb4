"""The configuration file's shape: clients, their teams and the teams' sources, validated by
pydantic with `extra="forbid"` so a misspelt key is an error, not a silent default.
`trackrecord.config` loads the file into these models.
"""

from __future__ import annotations

import re
from email.utils import parseaddr
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Team defaults; the same values as the connectors' and the trust score's own defaults.
DEFAULT_SIZE_LABEL_PREFIX = "size:"
DEFAULT_SIZE_VALUES = ("XS", "S", "M", "L", "XL")
DEFAULT_STORY_POINTS_FIELD = "customfield_10016"
DEFAULT_TRUST_HALF_LIFE_DAYS = 90.0
# The variable of the API token that reads every client (one home for the name).
ADMIN_TOKEN_ENV = "TRACKRECORD_ADMIN_TOKEN"

REPO_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
JIRA_KEY_RE = re.compile(r"^[A-Z][A-Z0-9_]+$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _check_tz(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown timezone {value!r} (use an IANA name like 'Europe/Berlin')"
        ) from None
    return value


def _check_env_name(value: str | None) -> str | None:
    if value is not None and not ENV_NAME_RE.match(value):
        raise ValueError(f"{value!r} is not an environment variable name")
    return value


def source_index(kind: str, key: str) -> tuple[str, str]:
    """How a source is looked up: GitHub names are case-insensitive; Jira keys are upper case
    by rule."""
    return kind, key.lower() if kind == "github" else key.upper()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GithubSourceModel(_Strict):
    repo: str
    secret_env: str | None = None
    hook_id: int | None = None

    @field_validator("repo")
    @classmethod
    def _repo(cls, v: str) -> str:
        if not REPO_RE.match(v):
            raise ValueError(f"{v!r} is not a repository 'owner/name'")
        return v

    _secret = field_validator("secret_env")(classmethod(lambda cls, v: _check_env_name(v)))


class JiraSourceModel(_Strict):
    project: str
    secret_env: str | None = None

    @field_validator("project")
    @classmethod
    def _key(cls, v: str) -> str:
        if not JIRA_KEY_RE.match(v):
            raise ValueError(f"{v!r} is not a Jira project key (capital letters, like 'PLAT')")
        return v

    _secret = field_validator("secret_env")(classmethod(lambda cls, v: _check_env_name(v)))


def _coerce_sources(value, key: str):
    # A source is usually just its name; a table is allowed when it needs its own secret.
    if isinstance(value, list):
        return [{key: v} if isinstance(v, str) else v for v in value]
    return value


class TeamModel(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    timezone: str = "UTC"
    github: list[GithubSourceModel] = []
    jira: list[JiraSourceModel] = []
    on_time_basis: str = Field("first", pattern="^(first|latest)$")
    small_max_points: float = 3
    # Size labels are `size_label_prefix` + one of `size_values` ("size:S"). `small_labels`
    # defaults to the prefix with the two smallest values; each must be such a label.
    size_label_prefix: str = DEFAULT_SIZE_LABEL_PREFIX
    size_values: list[str] = list(DEFAULT_SIZE_VALUES)
    small_labels: list[str] = []
    # The Jira field that holds story points; its id differs per site (Jira Cloud's
    # team-managed projects and many Server sites use other custom fields).
    story_points_field: str = Field(DEFAULT_STORY_POINTS_FIELD, pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    # Recency half-life of the trust score: evidence this many days old weighs half.
    trust_half_life_days: float = Field(DEFAULT_TRUST_HALF_LIFE_DAYS, gt=0, allow_inf_nan=False)
    # People whose comments answer for the team (GitHub logins, Jira accountIds or Server user
    # names), for the first-response figure. GitHub members are also learned from payloads.
    members: list[str] = []
    # The public SVG badge (/badges/<team>.svg) needs no token by design; a team that does not
    # want its rate public turns it off, and the route then answers 404 like an unknown team.
    badge: bool = True
    # Comments on settled items (issue 9): on by default once the platform's API credentials
    # are set; `dry_run` renders and logs them and posts nothing; `comment_template` is a
    # Jinja2 file replacing the built-in one (workers/templates/delivery_comment.j2).
    postback: bool | None = None
    dry_run: bool = False
    comment_template: str | None = None
    # The living milestone summary (issue 9): a tracking issue to keep it on as a comment,
    # `owner/repo#N` for GitHub or `PLAT-1` for Jira (one of each as a list); without one, a
    # GitHub milestone's summary is a marked block of its description.
    summary_issue: str | list[str] | None = None

    _tz = field_validator("timezone")(classmethod(lambda cls, v: _check_tz(v)))

    @field_validator("github", mode="before")
    @classmethod
    def _gh(cls, v):
        return _coerce_sources(v, "repo")

    @field_validator("jira", mode="before")
    @classmethod
    def _jira(cls, v):
        return _coerce_sources(v, "project")

    @field_validator("size_values")
    @classmethod
    def _size_values(cls, v: list[str]) -> list[str]:
        # Label values are compared upper-cased ("size:s" is S).
        values = [s.strip().upper() for s in v]
        if not values or not all(values):
            raise ValueError("list at least one size value, none of them empty")
        if len(set(values)) != len(values):
            raise ValueError("size values repeat")
        return values

    @model_validator(mode="before")
    @classmethod
    def _default_small_labels(cls, data):
        if isinstance(data, dict) and "small_labels" not in data:
            prefix = data.get("size_label_prefix", DEFAULT_SIZE_LABEL_PREFIX)
            values = data.get("size_values", DEFAULT_SIZE_VALUES)
            if isinstance(prefix, str) and isinstance(values, list | tuple):
                data = {**data, "small_labels": [f"{prefix}{s}" for s in values[:2]]}
        return data

    @model_validator(mode="after")
    def _small_labels_are_sizes(self) -> TeamModel:
        # A small label is matched as prefix + size value; any other label could never match.
        prefix = self.size_label_prefix.lower()
        for label in self.small_labels:
            value = label[len(prefix) :].strip().upper()
            if not label.lower().startswith(prefix) or value not in self.size_values:
                raise ValueError(
                    f"small label {label!r} is not size_label_prefix {self.size_label_prefix!r} "
                    f"followed by one of size_values {self.size_values}"
                )
        return self


EMAIL_RE = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")


def _check_email(value: str) -> str:
    if not EMAIL_RE.match(value):
        raise ValueError(f"{value!r} is not an email address like 'name@example.com'")
    return value


class ReportModel(_Strict):
    """The monthly report's schedule and channels (issue 10): built on the 1st at `hour` in the
    client's timezone, posted as an issue in `github_issue_repo`, mailed from `email_from` to
    `email_to` through SMTP_URL. No channel: built and stored, served, not sent."""

    hour: int = Field(8, ge=0, le=23)
    github_issue_repo: str | None = None
    email_to: list[str] = []
    email_from: str | None = None

    @field_validator("github_issue_repo")
    @classmethod
    def _repo(cls, v: str | None) -> str | None:
        if v is not None and not REPO_RE.match(v):
            raise ValueError(f"{v!r} is not a repository 'owner/name'")
        return v

    @field_validator("email_to")
    @classmethod
    def _to(cls, v: list[str]) -> list[str]:
        return [_check_email(a) for a in v]

    @field_validator("email_from")
    @classmethod
    def _from(cls, v: str | None) -> str | None:
        # A display name is welcome ("Acme reports <reports@acme.example>").
        if v is not None:
            _check_email(parseaddr(v)[1] or v)
        return v

    @model_validator(mode="after")
    def _sender(self) -> ReportModel:
        if self.email_to and not self.email_from:
            raise ValueError("email_to needs email_from, the address the report is sent from")
        return self


class ClientModel(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    timezone: str = "UTC"
    token_env: str | None = None
    teams: list[TeamModel] = []
    report: ReportModel = ReportModel()

    _tz = field_validator("timezone")(classmethod(lambda cls, v: _check_tz(v)))
    _tok = field_validator("token_env")(classmethod(lambda cls, v: _check_env_name(v)))

    @property
    def record_half_life_days(self) -> float:
        """The trust half-life of the client's pooled record: its teams' value when they agree,
        else the longest of them, so no team's evidence is forgotten faster than it asked.
        (One half-life per record keeps the figure one Beta estimate over one weighting.)"""
        return max(
            (t.trust_half_life_days for t in self.teams), default=DEFAULT_TRUST_HALF_LIFE_DAYS
        )


class FileModel(_Strict):
    clients: list[ClientModel] = []

    @model_validator(mode="after")
    def _unique(self) -> FileModel:
        seen_clients: set[str] = set()
        seen_teams: set[str] = set()
        owners: dict[tuple[str, str], str] = {}
        token_owners: dict[str, str] = {}
        for client in self.clients:
            if client.name in seen_clients:
                raise ValueError(f"client {client.name!r} is declared twice")
            seen_clients.add(client.name)
            # A token names one client: shared, the first client found would read the other's
            # record; the admin token's variable would let a client read every client's.
            if client.token_env == ADMIN_TOKEN_ENV:
                raise ValueError(
                    f"client {client.name!r}: token_env {ADMIN_TOKEN_ENV!r} is the admin token's "
                    "variable, which reads every client; name a variable of the client's own"
                )
            if client.token_env and client.token_env in token_owners:
                raise ValueError(
                    f"clients {token_owners[client.token_env]!r} and {client.name!r} share "
                    f"token_env {client.token_env!r}; each client needs a token of its own"
                )
            if client.token_env:
                token_owners[client.token_env] = client.name
            for team in client.teams:
                # Team names are URL keys (/api/v1/teams/<team>), so they are unique across clients.
                if team.name in seen_teams:
                    raise ValueError(f"team {team.name!r} is declared twice")
                seen_teams.add(team.name)
                sources = [source_index("github", s.repo) for s in team.github]
                sources += [source_index("jira", s.project) for s in team.jira]
                for src in sources:
                    if src in owners:
                        raise ValueError(
                            f"{src[0]} source {src[1]!r} belongs to both team "
                            f"{owners[src]!r} and team {team.name!r}"
                        )
                    owners[src] = team.name
        return self
