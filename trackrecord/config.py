"""Configuration: process settings from the environment, clients and teams from one TOML file.

Secrets never live in the file: it names environment variables (``token_env``, ``secret_env``)
and the values are read from the environment when needed, so the file can be committed.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from trackrecord.config_models import (  # noqa: F401  (re-exported: one import for callers)
    ADMIN_TOKEN_ENV,
    DEFAULT_SIZE_LABEL_PREFIX,
    DEFAULT_SIZE_VALUES,
    DEFAULT_STORY_POINTS_FIELD,
    DEFAULT_TRUST_HALF_LIFE_DAYS,
    ClientModel,
    FileModel,
    GithubSourceModel,
    JiraSourceModel,
    TeamModel,
    source_index,
)


def user_dir(env, xdg_var: str, fallback: str) -> Path:
    """An XDG base directory (`XDG_CONFIG_HOME`, `XDG_DATA_HOME`), absolute whatever the current
    folder: the same files wherever a command is run."""
    value = env.get(xdg_var)
    if value and os.path.isabs(value):
        return Path(value)
    return Path(env.get("HOME") or Path.home()) / fallback


def default_database_url(env=None) -> str:
    """SQLite in the user's data directory. Never relative to the current folder: run from
    another folder, a relative default silently made a new, empty database there."""
    env = os.environ if env is None else env
    data = user_dir(env, "XDG_DATA_HOME", ".local/share")
    return f"sqlite:///{data / 'trackrecord' / 'trackrecord.db'}"


DEFAULT_DATABASE_URL = default_database_url({})
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# GitHub caps webhook payloads at 25 MB and drops larger ones; we refuse the same.
# https://docs.github.com/en/webhooks/webhook-events-and-payloads#payload-cap
DEFAULT_MAX_BODY_BYTES = 25 * 1024 * 1024
# When this variable is set, /metrics asks for `Authorization: Bearer <its value>`.
METRICS_TOKEN_ENV = "TRACKRECORD_METRICS_TOKEN"


class ConfigError(Exception):
    """A configuration problem, worded for the operator: file, key and what is wrong."""


@dataclass(frozen=True)
class Source:
    """One repository or Jira project, and who owns it."""

    kind: str  # "github" or "jira"
    key: str  # "owner/name" or "PLAT"
    team: str
    client: str
    timezone: str
    secret_env: str | None = None
    hook_id: int | None = None


@dataclass(frozen=True)
class Config:
    path: str | None
    clients: tuple[ClientModel, ...] = ()
    _sources: dict[tuple[str, str], Source] = field(default_factory=dict, repr=False)

    def source(self, kind: str, key: str) -> Source | None:
        return self._sources.get(source_index(kind, key))

    def sources(self, kind: str | None = None) -> list[Source]:
        return [s for (k, _), s in self._sources.items() if kind in (None, k)]

    def team(self, name: str) -> TeamModel | None:
        for client in self.clients:
            for team in client.teams:
                if team.name == name:
                    return team
        return None

    def client_of(self, team_name: str) -> ClientModel | None:
        for client in self.clients:
            if any(t.name == team_name for t in client.teams):
                return client
        return None

    def client(self, name: str) -> ClientModel | None:
        return next((c for c in self.clients if c.name == name), None)


# The model behind each key that holds tables, for "did you mean" on a misspelt key.
_MODEL_OF_KEY = {
    None: FileModel,
    "clients": ClientModel,
    "teams": TeamModel,
    "github": GithubSourceModel,
    "jira": JiraSourceModel,
}


def _nearest_key(loc: tuple) -> str:
    """For an unknown key: the nearest key the table it sits in accepts (difflib)."""
    parents = [part for part in loc[:-1] if isinstance(part, str)]
    model = _MODEL_OF_KEY.get(parents[-1] if parents else None)
    if model is None or not isinstance(loc[-1], str):
        return ""
    close = difflib.get_close_matches(loc[-1], list(model.model_fields), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _format_loc(loc: tuple, data: dict) -> str:
    """Turn pydantic's location into the TOML key a person would look for: clients[0].teams[1].x"""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def load_config(path: str | os.PathLike | None) -> Config:
    """Read and validate the TOML file. Errors name the file, the key and the problem."""
    if path is None:
        return Config(path=None)
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the configuration file: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    try:
        model = FileModel.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = _format_loc(err["loc"], data)
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key" + _nearest_key(err["loc"])
            problems.append(f"{p}: {key}: {msg}")
        raise ConfigError("\n".join(problems)) from None

    sources: dict[tuple[str, str], Source] = {}
    for client in model.clients:
        for team in client.teams:
            for gh in team.github:
                sources[source_index("github", gh.repo)] = Source(
                    "github",
                    gh.repo,
                    team.name,
                    client.name,
                    team.timezone,
                    gh.secret_env,
                    gh.hook_id,
                )
            for jp in team.jira:
                sources[source_index("jira", jp.project)] = Source(
                    "jira", jp.project, team.name, client.name, team.timezone, jp.secret_env
                )
    return Config(path=str(p), clients=tuple(model.clients), _sources=sources)


@dataclass(frozen=True)
class Settings:
    """Process settings. Secrets are not copied here; they are read from the environment on use."""

    database_url: str
    redis_url: str
    config: Config
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    queue_name: str = "trackrecord"
    jira_allow_unsigned: bool = False
    relay_min_age_seconds: float = 30.0
    max_attempts: int = 5
    metrics_token_env: str = METRICS_TOKEN_ENV  # read on each scrape, never copied here

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        cfg_path = env.get("TRACKRECORD_CONFIG") or None
        # Every problem at once, the environment's and the file's: one fix-and-retry round.
        problems = []
        max_body = DEFAULT_MAX_BODY_BYTES
        try:
            max_body = int(env.get("TRACKRECORD_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES))
        except ValueError:
            problems.append("TRACKRECORD_MAX_BODY_BYTES: not a whole number")
        config = Config(path=None)
        try:
            config = load_config(cfg_path)
        except ConfigError as exc:
            problems.append(str(exc))
        if problems:
            raise ConfigError("\n".join(problems))
        return cls(
            database_url=env.get("DATABASE_URL") or default_database_url(env),
            redis_url=env.get("REDIS_URL") or DEFAULT_REDIS_URL,
            config=config,
            max_body_bytes=max_body,
            queue_name=env.get("TRACKRECORD_QUEUE", "trackrecord"),
            jira_allow_unsigned=env.get("TRACKRECORD_JIRA_ALLOW_UNSIGNED", "") in ("1", "true"),
        )


# The variable of each platform's default webhook secret.
GLOBAL_SECRET_ENV = {"github": "GITHUB_WEBHOOK_SECRET", "jira": "JIRA_WEBHOOK_SECRET"}


def secret_env_of(kind: str, source: Source | None) -> str:
    """The variable holding a source's webhook secret: its own `secret_env`, else the global."""
    return (source.secret_env if source else None) or GLOBAL_SECRET_ENV[kind]


def secret_for(kind: str, source: Source | None, env: dict[str, str] | None = None) -> str | None:
    """The webhook secret for a source: its own variable if it names one, else the global one.
    A source whose own variable is unset has no secret: it does not fall back to the global."""
    env = os.environ if env is None else env
    return env.get(secret_env_of(kind, source)) or None


def secret_groups(
    config: Config, kind: str, env: dict[str, str] | None = None
) -> dict[str, tuple[Source, ...]]:
    """Every distinct webhook secret configured for a platform, and the sources it verifies:
    those whose effective secret (`secret_for`) is that value.

    A request is checked against each of them before its body is read (webhook_app.signatures),
    so which sources it may speak for follows from the secret that signed it, not from what
    the body claims. The global secret is listed even when no source uses it (a GitHub `ping`
    signed with it is still answered). Values are never logged or shown.
    """
    env = os.environ if env is None else env
    groups: dict[str, list[Source]] = {}
    default = env.get(GLOBAL_SECRET_ENV[kind]) or None
    if default is not None:
        groups[default] = []
    for source in config.sources(kind):
        secret = secret_for(kind, source, env)
        if secret is not None:
            groups.setdefault(secret, []).append(source)
    return {secret: tuple(sources) for secret, sources in groups.items()}


def unsigned_sources(
    config: Config, kind: str, env: dict[str, str] | None = None
) -> tuple[Source, ...]:
    """Sources with no secret at all (their variable is unset): only an unsigned Jira delivery,
    when TRACKRECORD_JIRA_ALLOW_UNSIGNED is on, may speak for them."""
    env = os.environ if env is None else env
    return tuple(s for s in config.sources(kind) if secret_for(kind, s, env) is None)
