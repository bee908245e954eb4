"""A `jira` client from the environment: JIRA_URL with JIRA_EMAIL + JIRA_API_TOKEN (Cloud, basic
auth) or JIRA_PAT (Server / Data Center personal access token, bearer).

Jobs build their own client, so this is called inside jobs; the same settings serve comment
posting later. Cloud: https://developer.atlassian.com/cloud/jira/platform/basic-auth-for-rest-apis/
Server/DC: https://confluence.atlassian.com/enterprise/using-personal-access-tokens-1026032365.html
"""

from __future__ import annotations

import os

from jira import JIRA


class JiraNotConfigured(RuntimeError):
    pass


def jira_client(env=None, *, max_retries: int = 3, timeout: float = 30) -> JIRA:
    """`max_retries` is the library's own retry (429 and 503 only); a caller with its own
    retry passes 0 so waits are not stacked."""
    env = os.environ if env is None else env
    url = (env.get("JIRA_URL") or "").rstrip("/")
    email, token, pat = env.get("JIRA_EMAIL"), env.get("JIRA_API_TOKEN"), env.get("JIRA_PAT")
    if not url or not ((email and token) or pat):
        raise JiraNotConfigured(
            "set JIRA_URL with JIRA_EMAIL and JIRA_API_TOKEN (Jira Cloud), "
            "or JIRA_URL with JIRA_PAT (Jira Server / Data Center), to reach the Jira API"
        )
    auth = {"basic_auth": (email, token)} if email and token else {"token_auth": pat}
    # get_server_info tells Cloud from Server (deploymentType), which decides the search API.
    return JIRA(
        server=url,
        max_retries=max_retries,
        timeout=timeout,
        get_server_info=True,
        options={"check_update": False},
        **auth,
    )
