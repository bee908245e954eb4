"""Where a living milestone summary is written (issue 9): the marked block of a GitHub
milestone's description, or one comment on a tracking issue (GitHub or Jira) edited in place.

Built on the comment clients of connectors.comments, so failures are sorted the same way
(`RateLimited`, `Gone`, `Transient`) and the clients make one attempt per request.
"""

from __future__ import annotations

import re

from connectors.comments import GithubComments, Gone, JiraComments, Posted

START = "<!-- trackrecord:summary:start -->"
END = "<!-- trackrecord:summary:end -->"
_BLOCK = re.compile(re.escape(START) + r".*?" + re.escape(END), re.DOTALL)


def with_block(description: str | None, block: str) -> str:
    """The description with its marked block replaced by `block` (which carries the markers),
    or `block` appended when there is none; the rest of the text untouched."""
    text = description or ""
    if _BLOCK.search(text):
        return _BLOCK.sub(lambda _: block, text, count=1)
    return f"{text.rstrip()}\n\n{block}" if text.strip() else block


def milestone_of(scope: str) -> tuple[str, int] | None:
    """(owner/repo, number) of a GitHub milestone scope key `github:owner/repo/milestone/N`."""
    found = re.fullmatch(r"github:(.+)/milestone/(\d+)", scope)
    return (found[1], int(found[2])) if found else None


class GithubSummaries(GithubComments):
    def write_milestone(self, number: int, block: str) -> None:
        """Replace the marked block of the milestone's description (GET, then PATCH)."""

        def edit():
            milestone = self.gh.get_repo(self.repo_name).get_milestone(number)
            text = with_block(milestone.description, block)
            if text != (milestone.description or ""):
                milestone.edit(milestone.title, description=text)

        self._call(edit)

    def edit(self, number: int, comment_id: str, body: str) -> None:
        def change():
            issue = self.gh.get_repo(self.repo_name).get_issue(number)
            issue.get_comment(int(comment_id)).edit(body)

        self._call(change)


class JiraSummaries(JiraComments):
    def edit(self, key: str, comment_id: str, body: str) -> None:
        self._call(lambda: self.jira.comment(key, comment_id).update(body=body))


def tracking_issue(item_key: str, env=None):
    """(client, target) for a tracking issue's item key (`github:owner/repo#N`, `jira:KEY`)."""
    if item_key.startswith("github:"):
        repo, _, number = item_key.removeprefix("github:").rpartition("#")
        return GithubSummaries(repo, env), int(number)
    return JiraSummaries(env), item_key.removeprefix("jira:")


def write_comment(item_key: str, comment_id: str | None, token: str, body: str) -> Posted:
    """Edit our comment in place; without its id, find it by its marker first (an earlier
    attempt may have posted it), and post it only when it is not there. A comment someone
    deleted is written again: the summary lives on; a tracking issue that is gone stays
    `Gone`."""
    client, target = tracking_issue(item_key)
    if comment_id is not None:
        try:
            client.edit(target, comment_id, body)
            return Posted(comment_id)
        except Gone:
            pass  # the comment is gone (or the issue: then the search below says so)
    comment_id = client.find(target, token)
    if comment_id is None:
        return client.post(target, body)
    client.edit(target, comment_id, body)
    return Posted(comment_id)
