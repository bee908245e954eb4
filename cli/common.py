"""What every command shares: the settings with their env file, read once, and one plain line
instead of a traceback for the failures an operator meets (bad configuration, a database
without tables or that does not answer, Redis down).

The env file: every command first reads `$XDG_CONFIG_HOME/trackrecord/env` (by default
`~/.config/trackrecord/env`; `TRACKRECORD_ENV_FILE` names another, or none when empty), which
`./scripts/run` writes with absolute paths, so `trackrecord` finds the same configuration and
database from any folder. A variable already in the process environment always wins.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
from pathlib import Path

import click

from trackrecord.config import ConfigError, Settings, default_database_url, user_dir

ENV_FILE_VAR = "TRACKRECORD_ENV_FILE"


def env_file_path(env=None) -> Path | None:
    env = os.environ if env is None else env
    if ENV_FILE_VAR in env:
        return Path(env[ENV_FILE_VAR]).expanduser() if env[ENV_FILE_VAR] else None
    return user_dir(env, "XDG_CONFIG_HOME", ".config") / "trackrecord" / "env"


def read_env_file(path: Path) -> dict[str, str]:
    """`NAME=value` lines (an `export ` before the name and shell quotes are allowed; `#` starts
    a comment line). A missing file is no values; a malformed line is an error naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the env file: {exc}") from None
    values = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.removeprefix("export ").partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise ConfigError(f"{path}:{number}: not a line NAME=value")
        try:
            words = shlex.split(value, comments=True)
        except ValueError as exc:
            raise ConfigError(f"{path}:{number}: {name}: {exc}") from None
        values[name] = " ".join(words)
    return values


@contextlib.contextmanager
def env_file_applied():
    """The env file's variables added to the process environment for one command (and the
    processes it starts), then taken away again."""
    path = env_file_path()
    added = {}
    if path is not None:
        added = {k: v for k, v in read_env_file(path).items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield path
    finally:
        for name in added:
            os.environ.pop(name, None)


def load_settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        # A bad file stops the process at start with the file, key and problem, not a traceback.
        click.echo(f"trackrecord: configuration error:\n{exc}", err=True)
        sys.exit(2)


def safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(DATABASE_URL)"


def require_schema(database_url: str) -> None:
    """Stop with "run `trackrecord db upgrade`" when the database has no tables or an older
    schema than this code: the alternative is an SQL error deep in some query."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from trackrecord.db import get_engine
    from trackrecord.migrate import alembic_config

    with get_engine(database_url).connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    heads = set(ScriptDirectory.from_config(alembic_config(database_url)).get_heads())
    where = safe_url(database_url)
    if not current:
        fail(f"the database {where} has no tables: run `trackrecord db upgrade`")
    if current != heads:
        fail(
            f"the database {where} is at revision {', '.join(sorted(current))}, this trackrecord "
            f"needs {', '.join(sorted(heads))}: run `trackrecord db upgrade`"
        )


def open_database(settings: Settings):
    """A session factory on a database whose schema is current."""
    from trackrecord.db import session_factory

    require_schema(settings.database_url)
    return session_factory(settings.database_url)


def fail(message: str, code: int = 1):
    click.echo(f"trackrecord: {message}", err=True)
    raise click.exceptions.Exit(code)


def _first_line(exc: BaseException) -> str:
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip().splitlines()
    return text[0] if text else type(inner).__name__


def _plain(exc: Exception) -> str | None:
    """The one line an expected failure deserves, or None for a bug (which keeps its trace)."""
    from redis.exceptions import ConnectionError as RedisDown
    from redis.exceptions import TimeoutError as RedisSlow
    from sqlalchemy import exc as sa

    url = safe_url(os.environ.get("DATABASE_URL") or default_database_url())
    if isinstance(exc, sa.ArgumentError):
        return f"DATABASE_URL: {_first_line(exc)}"
    if isinstance(exc, sa.OperationalError | sa.ProgrammingError):
        reason = _first_line(exc)
        code = getattr(getattr(exc, "orig", None), "sqlstate", None)
        # SQLite names the missing table or column; PostgreSQL's codes 42P01 and 42703 mean it.
        if "no such table" in reason or "no such column" in reason or code in ("42P01", "42703"):
            return f"the database {url} lacks tables ({reason}): run `trackrecord db upgrade`"
        if isinstance(exc, sa.OperationalError):
            return f"the database {url} does not answer: {reason}"
    if isinstance(exc, RedisDown | RedisSlow):
        return f"Redis does not answer: {_first_line(exc)}"
    return None


class PlainErrors(click.Group):
    """The command group: reads the env file, and turns an expected failure of any command into
    one line on stderr and a non-zero exit."""

    def invoke(self, ctx: click.Context):
        try:
            ctx.with_resource(env_file_applied())
            return super().invoke(ctx)
        except ConfigError as exc:
            click.echo(f"trackrecord: configuration error:\n{exc}", err=True)
            raise click.exceptions.Exit(2) from None
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:
            line = _plain(exc)
            if line is None:
                raise
            click.echo(f"trackrecord: {line}", err=True)
            raise click.exceptions.Exit(1) from None


def api_failure(exc: BaseException) -> str | None:
    """Why a call to GitHub or Jira failed, in one line; None for what is not such a failure."""
    import requests
    from github import GithubException
    from jira import JIRAError

    from connectors.github_api import GithubNotConfigured, api_url, no_answer
    from connectors.jira_api import JiraNotConfigured

    if isinstance(exc, GithubNotConfigured | JiraNotConfigured):
        return str(exc)
    if isinstance(exc, GithubException):
        message = exc.data.get("message") if isinstance(exc.data, dict) else None
        return f"GitHub ({api_url()}) answered {exc.status}: {message or exc.data}"
    if isinstance(exc, JIRAError):
        where = exc.url or os.environ.get("JIRA_URL")
        return f"Jira ({where}) answered {exc.status_code}: {exc.text}"
    if isinstance(exc, requests.RequestException | OSError):
        host = getattr(getattr(exc, "request", None), "url", None) or "the API"
        return f"{host.split('?')[0]} does not answer: {no_answer(exc)}"
    return None
