"""The monthly report as a GitHub issue in the client's `report.github_issue_repo` (issue 10),
through PyGithub with the same credentials and error sorting as the comments on items
(connectors/comments.py): RateLimited, Gone (a verdict: 404, 410, 401, 403 without a limit,
422) or Transient (5xx, timeout).

Every issue body ends with a hidden marker naming the client, month and re-send number. Before
creating, the caller looks for an issue of ours that carries the marker, so an attempt whose
outcome was unknown (a timeout after GitHub stored the issue) is found, never posted twice.
"""

from __future__ import annotations

from connectors.comments import GithubComments, marker_re

# GitHub refuses an issue body over 65,536 characters.
# https://docs.github.com/en/rest/issues/issues#create-an-issue (body: "maximum 65536")
MAX_BODY = 65_000
# Our issues are listed newest first; a marker is looked for among this many.
SCAN_LIMIT = 300


def marker(client: str, month: str, resend: int) -> str:
    return f"<!-- trackrecord:report:{client}:{month}:{resend} -->"


def issue_body(markdown: str, token: str, link: str | None = None) -> str:
    """The Markdown report, cut to GitHub's limit (pointing to the full one), then the marker."""
    tail = f"\n\n{token}\n"
    if len(markdown) + len(tail) > MAX_BODY:
        note = "\n\n…(cut to GitHub's size limit"
        note += f"; the full report: {link})" if link else ")"
        markdown = markdown[: MAX_BODY - len(tail) - len(note)] + note
    return markdown + tail


class ReportIssues(GithubComments):
    """Issues of one repository, as our own identity (a token's user, or an App's bot)."""

    def find_issue(self, token: str) -> str | None:
        """The number of an issue of ours whose body carries `token`, if any."""
        me = self.me()
        # The marker ends with "-->", so resend 1 never matches resend 10.
        pattern = marker_re(token)

        def scan():
            repo = self.gh.get_repo(self.repo_name)
            issues = (
                repo.get_issues(state="all", creator=me, sort="created", direction="desc")
                if me
                else repo.get_issues(state="all", sort="created", direction="desc")
            )
            for seen, issue in enumerate(issues):
                if seen >= SCAN_LIMIT:
                    break
                mine = issue.user.login == me if me else issue.user.type == "Bot"
                if mine and pattern.search(issue.body or ""):
                    return str(issue.number)
            return None

        return self._call(scan)

    def create_issue(self, title: str, body: str) -> str:
        issue = self._call(lambda: self.gh.get_repo(self.repo_name).create_issue(title, body))
        return str(issue.number)


def post_report(repo: str, title: str, body: str, token: str, env=None) -> tuple[str, bool]:
    """(issue number, whether it was created now): the existing issue with `token` if any,
    else a new one."""
    issues = ReportIssues(repo, env)
    found = issues.find_issue(token)
    if found:
        return found, False
    return issues.create_issue(title, body), True
