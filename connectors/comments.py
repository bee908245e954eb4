"""Posting a comment on an item, and finding one we posted: GitHub through PyGithub, Jira through
the `jira` library, each built from the configured environment (never from a URL in a payload).

Every failure is sorted into what the caller does next:

- `RateLimited(reset)`: a 403 or 429 with `Retry-After` or `X-RateLimit-Reset` (GitHub's primary
  and secondary limits, Jira Cloud's 429): run again after `reset`, without counting a failure.
  https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api
- `Gone`: 404 or 410 (item deleted, moved, or no access): stop and record it.
- `Transient`: 5xx, a timeout, a dropped connection: retry with backoff. Whether the server
  stored the comment is then unknown, so the next attempt looks for its marker first.

The clients make one attempt per request (no library retries): the job owns the retry policy,
and a POST must never be repeated blindly.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import requests
from github import Auth, Github, GithubException

from connectors.github_api import api_url, github_client
from connectors.jira_api import JiraNotConfigured, jira_client

TIMEOUT = 15  # seconds, per request


class PostError(Exception):
    pass


class RateLimited(PostError):
    def __init__(self, reset: datetime, detail: str) -> None:
        super().__init__(detail)
        self.reset = reset


class Gone(PostError):
    pass


class Transient(PostError):
    pass


@dataclass(frozen=True)
class Posted:
    comment_id: str


def marker_re(token: str) -> re.Pattern:
    # The id must end where the token ends: postback 1 is not postback 12.
    return re.compile(re.escape(token) + r"(?!\d)")


def _reset_from(status: int, headers: dict, now: datetime) -> datetime | None:
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    if status not in (403, 429):
        return None
    if headers.get("retry-after"):
        try:
            return now + timedelta(seconds=max(1.0, float(headers["retry-after"])))
        except ValueError:
            pass
    spent = status == 429 or headers.get("x-ratelimit-remaining") == "0"
    if headers.get("x-ratelimit-reset") and spent:
        try:
            return datetime.fromtimestamp(int(headers["x-ratelimit-reset"]), UTC)
        except ValueError:
            pass
    return None


def classify(status: int | None, headers: dict | None, detail: str) -> PostError:
    """The one mapping from an answer to what happens next."""
    now = datetime.now(UTC)
    reset = _reset_from(status or 0, headers or {}, now)
    if reset is not None:
        return RateLimited(reset, detail)
    if status == 403 and "secondary rate limit" in detail.lower():
        # GitHub's secondary limit sometimes comes without a header: wait a minute.
        return RateLimited(now + timedelta(seconds=60), detail)
    if status in (404, 410):
        return Gone(detail)
    if status is None or status >= 500 or status == 429:
        return Transient(detail)
    # Another 4xx (401, 403 without a limit, 422) is a verdict: retrying will not change it.
    return Gone(detail)


# --- GitHub ------------------------------------------------------------------------------------


def _split(item_key: str) -> tuple[str, int]:
    repo, _, number = item_key.removeprefix("github:").rpartition("#")
    return repo, int(number)


class GithubComments:
    """Comments on one repository's issues and pull requests (one number space)."""

    def __init__(self, repo: str, env=None) -> None:
        env = os.environ if env is None else env
        self.repo_name = repo
        token = env.get("GITHUB_TOKEN")
        if token:
            self.gh = Github(auth=Auth.Token(token), base_url=api_url(env), retry=None,
                             timeout=TIMEOUT, lazy=True)  # fmt: skip
            self.app = False
        else:  # a GitHub App installation: its comments are written by `<slug>[bot]`
            self.gh = github_client(repo, env, retries=0)
            self.app = True

    def _call(self, fn):
        try:
            return fn()
        except GithubException as exc:
            raise classify(exc.status, exc.headers, f"{exc.status} {exc.data}"[:500]) from exc
        except requests.RequestException as exc:
            raise Transient(f"{type(exc).__name__}: {exc}"[:500]) from exc

    def me(self) -> str | None:
        if self.app:
            return None  # matched by the bot type below
        return self._call(lambda: self.gh.get_user().login)

    def find(self, number: int, token: str) -> str | None:
        """The id of a comment of ours on the item that carries `token`, if any."""
        me = self.me()
        pattern = marker_re(token)

        def scan():
            issue = self.gh.get_repo(self.repo_name).get_issue(number)
            for comment in issue.get_comments():
                mine = comment.user.login == me if me else comment.user.type == "Bot"
                if mine and pattern.search(comment.body or ""):
                    return str(comment.id)
            return None

        return self._call(scan)

    def post(self, number: int, body: str) -> Posted:
        def create():
            issue = self.gh.get_repo(self.repo_name).get_issue(number)
            return issue.create_comment(body)

        return Posted(str(self._call(create).id))


# --- Jira --------------------------------------------------------------------------------------


class JiraComments:
    def __init__(self, env=None) -> None:
        try:
            self.jira = jira_client(env, max_retries=0, timeout=TIMEOUT)
        except JiraNotConfigured:
            raise
        except Exception as exc:
            raise self._classified(exc) from exc

    @staticmethod
    def _classified(exc: Exception) -> PostError:
        from jira.exceptions import JIRAError

        if isinstance(exc, JIRAError):
            headers = dict(exc.response.headers) if exc.response is not None else {}
            return classify(exc.status_code, headers, f"{exc.status_code} {exc.text}"[:500])
        if isinstance(exc, requests.RequestException):
            return Transient(f"{type(exc).__name__}: {exc}"[:500])
        return Transient(f"{type(exc).__name__}: {exc}"[:500])

    def _call(self, fn):
        try:
            return fn()
        except PostError:
            raise
        except Exception as exc:
            raise self._classified(exc) from exc

    def find(self, key: str, token: str) -> str | None:
        def scan():
            me = self.jira.myself()
            mine = {me.get("accountId"), me.get("name"), me.get("key")} - {None}
            pattern = marker_re(token)
            for comment in self.jira.comments(key):
                author = getattr(comment, "author", None)
                ids = {getattr(author, a, None) for a in ("accountId", "name", "key")}
                if ids & mine and pattern.search(comment.body or ""):
                    return str(comment.id)
            return None

        return self._call(scan)

    def post(self, key: str, body: str) -> Posted:
        return Posted(str(self._call(lambda: self.jira.add_comment(key, body)).id))


def comments_for(item_key: str, env=None):
    """(client, target) for an item key: `github:owner/repo#N` or `jira:KEY`."""
    if item_key.startswith("github:"):
        repo, number = _split(item_key)
        return GithubComments(repo, env), number
    if item_key.startswith("jira:"):
        return JiraComments(env), item_key.removeprefix("jira:")
    raise Gone(f"no comments for item {item_key!r}")


def can_post(kind: str, env=None) -> bool:
    """Whether API credentials for the platform are set (postback is on by default then)."""
    env = os.environ if env is None else env
    if kind == "github":
        app = env.get("GITHUB_APP_ID") and env.get("GITHUB_APP_PRIVATE_KEY")
        return bool(env.get("GITHUB_TOKEN") or app)
    if kind == "jira":
        basic = env.get("JIRA_EMAIL") and env.get("JIRA_API_TOKEN")
        return bool(env.get("JIRA_URL") and (basic or env.get("JIRA_PAT")))
    return False
