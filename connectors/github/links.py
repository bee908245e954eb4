"""Which items a pull request names: closing keywords in its body, Jira keys in its title and
branch. The text is the author's, so anyone who can open a pull request on a public repository
chooses it: the patterns run on RE2, whose time is linear in the text whatever it holds (a body
of `fix` and 64,000 spaces kept Python's backtracking engine busy for minutes).

Only the matching is here; which targets a pull request may name is the normaliser's decision.
"""

from __future__ import annotations

import re2

from connectors.shapes import GITHUB_REPO, MAX_ID_DIGITS, is_jira_issue_key

# https://docs.github.com/en/issues/tracking-your-work-with-issues/linking-a-pull-request-to-an-issue
_CLOSING = re2.compile(
    r"(?i)\b(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?)\s*:?\s+"
    r"(?:https://github\.com/)?(?P<repo>[\w.-]+/[\w.-]+)?(?:#|/issues/)(?P<num>[0-9]+)"
)
# A key is not preceded by a letter or digit; the greedy number takes every digit after it, so
# `PLAT-12` is never read as `PLAT-1`. RE2 has no look-behind: the boundary is consumed instead,
# which loses nothing, because a key ends in a digit and a digit is no boundary for the next.
_JIRA_KEY = re2.compile(r"(?:^|[^A-Za-z0-9])([A-Z][A-Z0-9_]+-[1-9][0-9]*)")
_REPO = re2.compile(f"^{GITHUB_REPO}$")


def closing_refs(body: str) -> list[tuple[str | None, int]]:
    """(repository or None for the pull request's own, issue number) for each closing keyword."""
    found = []
    for match in _CLOSING.finditer(body):
        repo, digits = match.group("repo"), match.group("num").lstrip("0")
        if not digits or len(digits) > MAX_ID_DIGITS:
            continue
        if repo is not None and not _REPO.search(repo):
            continue
        found.append((repo, int(digits)))
    return found


def jira_keys(text: str) -> list[str]:
    return [key for key in _JIRA_KEY.findall(text) if is_jira_issue_key(key)]
