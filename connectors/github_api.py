"""A PyGithub client from the environment: GITHUB_API_URL with GITHUB_TOKEN, or a GitHub App
(GITHUB_APP_ID + GITHUB_APP_PRIVATE_KEY, a path to the PEM file) acting as its installation.

Jobs build their own client (they receive only ids), so this is called inside jobs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from github import Auth, Github, GithubIntegration, GithubRetry

DEFAULT_API_URL = "https://api.github.com"

# Told how long the client is about to sleep and why (HTTP status), so a progress bar can say so.
# The reason is set when there was no answer at all (refused, no such host, timed out).
WaitHook = Callable[[float, int | None, str | None], None]


class GithubNotConfigured(RuntimeError):
    pass


class _ReportingRetry(GithubRetry):
    """GithubRetry that reports each wait before sleeping it (urllib3 sleeps out of our sight)."""

    def __init__(self, *, on_wait: WaitHook | None = None, **kwargs) -> None:
        self.on_wait = on_wait
        super().__init__(**kwargs)

    def new(self, **kw):
        retry = super().new(**kw)
        retry.on_wait = self.on_wait
        return retry

    def increment(self, *args, error=None, **kwargs):
        retry = super().increment(*args, error=error, **kwargs)
        retry.last_error = error  # what sleep() reports when there is no response
        return retry

    def sleep(self, response=None) -> None:
        if self.on_wait is not None:
            after = self.get_retry_after(response) if response is not None else None
            reason = no_answer(getattr(self, "last_error", None)) if response is None else None
            self.on_wait(
                after or self.get_backoff_time(), getattr(response, "status", None), reason
            )
        super().sleep(response)


_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")


def no_answer(error: BaseException | None) -> str | None:
    """Why a server did not answer, in a few words: "Connection refused", "Name or service not
    known", "read timed out". urllib3 and requests nest the OS error inside their messages."""
    if error is None:
        return None
    found = _ERRNO.search(str(error))
    if found:
        return found.group(1).strip()
    return "timed out" if "timed out" in str(error).lower() else type(error).__name__


def _retry(total: int | None = None, on_wait: WaitHook | None = None) -> GithubRetry:
    # GithubRetry waits for the reset GitHub announces on a rate-limit 403 and backs off on 5xx;
    # 429 is added so a Retry-After on it is honoured too. The total bounds how long one call
    # may keep a worker busy.
    return _ReportingRetry(
        total=6 if total is None else total,
        backoff_factor=0.5,
        status_forcelist=[429, *range(500, 600)],
        on_wait=on_wait,
    )


def api_url(env=None) -> str:
    env = os.environ if env is None else env
    return (env.get("GITHUB_API_URL") or DEFAULT_API_URL).rstrip("/")


def github_client(
    repo_full_name: str | None = None,
    env=None,
    *,
    retries: int | None = None,
    on_wait: WaitHook | None = None,
    per_page: int = 100,
) -> Github:
    """`retries` bounds attempts per request; `on_wait` hears of every rate-limit or backoff
    sleep; `per_page` is the page size asked of list endpoints (GitHub's maximum is 100)."""
    env = os.environ if env is None else env
    base = api_url(env)
    token = env.get("GITHUB_TOKEN")
    if token:
        return Github(
            auth=Auth.Token(token),
            base_url=base,
            retry=_retry(retries, on_wait),
            per_page=per_page,
            lazy=True,
        )
    app_id, key_path = env.get("GITHUB_APP_ID"), env.get("GITHUB_APP_PRIVATE_KEY")
    if app_id and key_path:
        app_auth = Auth.AppAuth(int(app_id), Path(key_path).read_text())
        integration = GithubIntegration(
            auth=app_auth, base_url=base, retry=_retry(retries, on_wait)
        )
        if repo_full_name is None:
            raise GithubNotConfigured("a GitHub App client needs the repository it acts on")
        owner, name = repo_full_name.split("/", 1)
        installation = integration.get_repo_installation(owner, name)
        return Github(
            auth=app_auth.get_installation_auth(installation.id),
            base_url=base,
            retry=_retry(retries, on_wait),
            per_page=per_page,
            lazy=True,
        )
    raise GithubNotConfigured(
        "set GITHUB_TOKEN, or GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY, to reach the GitHub API"
    )
