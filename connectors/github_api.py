"""A PyGithub client from the environment: GITHUB_API_URL with GITHUB_TOKEN, or a GitHub App
(GITHUB_APP_ID + GITHUB_APP_PRIVATE_KEY, a path to the PEM file) acting as its installation.

Jobs build their own client (they receive only ids), so this is called inside jobs.
"""

from __future__ import annotations

import os
from pathlib import Path

from github import Auth, Github, GithubIntegration, GithubRetry

DEFAULT_API_URL = "https://api.github.com"


class GithubNotConfigured(RuntimeError):
    pass


def _retry() -> GithubRetry:
    # GithubRetry waits for the reset GitHub announces on a rate-limit 403 and backs off on 5xx;
    # 429 is added so a Retry-After on it is honoured too. The total bounds how long one call
    # may keep a worker busy.
    return GithubRetry(total=6, backoff_factor=0.5, status_forcelist=[429, *range(500, 600)])


def api_url(env=None) -> str:
    env = os.environ if env is None else env
    return (env.get("GITHUB_API_URL") or DEFAULT_API_URL).rstrip("/")


def github_client(repo_full_name: str | None = None, env=None) -> Github:
    env = os.environ if env is None else env
    base = api_url(env)
    token = env.get("GITHUB_TOKEN")
    if token:
        return Github(
            auth=Auth.Token(token), base_url=base, retry=_retry(), per_page=100, lazy=True
        )
    app_id, key_path = env.get("GITHUB_APP_ID"), env.get("GITHUB_APP_PRIVATE_KEY")
    if app_id and key_path:
        app_auth = Auth.AppAuth(int(app_id), Path(key_path).read_text())
        integration = GithubIntegration(auth=app_auth, base_url=base, retry=_retry())
        if repo_full_name is None:
            raise GithubNotConfigured("a GitHub App client needs the repository it acts on")
        owner, name = repo_full_name.split("/", 1)
        installation = integration.get_repo_installation(owner, name)
        return Github(
            auth=app_auth.get_installation_auth(installation.id),
            base_url=base,
            retry=_retry(),
            per_page=100,
            lazy=True,
        )
    raise GithubNotConfigured(
        "set GITHUB_TOKEN, or GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY, to reach the GitHub API"
    )
