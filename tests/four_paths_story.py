"""One team's history, written once and rendered the ways it can reach trackrecord.

The team is "platform" of tests/conftest.py (UTC): GitHub repository Codertocat/Hello-World and
Jira project TES. The story, in the spring of 2024 (long past, so no "now" matters):

GitHub, milestones "Sprint 42" (due 2024-03-08) and "Sprint 43" (due 2024-03-22):
- #10 planned into Sprint 42, moved to Sprint 43 on 03-06 (the re-promise), closed 03-20:
  judged against the first promise, late by 12 days.
- #11 born in Sprint 42, closed 03-04, reopened 03-05, closed again on the due day: on time.
- #12 planned into Sprint 42, delivered by the merge of PR #13 ("Fixes #12") on 03-05; GitHub
  closes the issue two seconds after the merge. #13 sits in Sprint 42 too: linked, not a
  second commitment.
- #14 planned into Sprint 42, closed 03-12: late by 4 days.

Jira:
- TES-101 added to the active "TES Sprint 7" (ends 2024-03-08 17:00Z), done 03-07: early.
- TES-102 given fix version 2.0 (release 2024-03-15), done on the release day: on time.
- TES-103 given a due date (2024-03-11), resolved Won't Do on 03-06: dropped.

Renderings (each built from the real payloads in tests/fixtures, changing only what the story
needs):
- `webhooks(story)`: the deliveries GitHub and Jira send, in event order, each with its id;
- `github_api(story, base)` / `jira_api(story)`: the REST objects backfill reads.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from tests.helpers import json_of

REPO = "Codertocat/Hello-World"  # team "platform", UTC (tests/conftest.py)
PROJECT = "TES"  # team "platform" too
GITHUB_PUBLIC = "https://api.github.com"
JIRA_PUBLIC = "https://some-instance-test.atlassian.net"
PACIFIC = ZoneInfo("America/Los_Angeles")
SPRINT_FIELD = "customfield_10020"  # Jira Cloud's sprint field
POINTS_FIELD = "customfield_10016"  # the default story points field
# When the REST objects are read: after everything, so closed sprints and released versions
# look as they do today.
READ_AT = datetime(2024, 6, 3, 9, 0, tzinfo=UTC)
_IDS = uuid.UUID("6f1c0c52-2c1e-4d0a-9a55-7a0f4d3b0e21")


def t(text: str) -> datetime:
    """'2024-02-26 09:00[:ss]' in UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def gh_time(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def jira_time(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000") if moment else None


def jira_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


# --- the story --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Milestone:
    number: int
    title: str
    due: date
    created: datetime

    @property
    def due_on(self) -> str:
        # GitHub keeps a day and sends it as midnight US Pacific (08:00Z in winter, 07:00Z in
        # summer: Sprint 43 falls after the 2024-03-10 clock change).
        return gh_time(datetime.combine(self.due, time.min, PACIFIC))


@dataclass(frozen=True)
class Step:
    action: str  # milestoned | demilestoned | closed | reopened | merged
    at: datetime
    milestone: Milestone | None = None
    reason: str | None = None  # closed: state_reason
    by_pr: int | None = None  # closed: the pull request whose merge closed it


@dataclass(frozen=True)
class GhItem:
    number: int
    title: str
    opened: datetime
    steps: tuple[Step, ...]
    labels: tuple[str, ...] = ()
    born_in: Milestone | None = None
    pr: bool = False
    body: str = ""
    head: str | None = None

    @property
    def key(self) -> str:
        return f"github:{REPO}#{self.number}"


@dataclass(frozen=True)
class Sprint:
    id: int
    name: str
    start: datetime
    end: datetime
    complete: datetime

    def as_of(self, moment: datetime) -> dict:
        state = (
            "future" if moment < self.start else "active" if moment < self.complete else "closed"
        )
        out = {
            "id": self.id,
            "name": self.name,
            "state": state,
            "boardId": 1,
            "goal": "",
            "startDate": self.start.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "endDate": self.end.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        }
        if state == "closed":
            out["completeDate"] = self.complete.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return out


@dataclass(frozen=True)
class Version:
    id: str
    name: str
    release: date

    def as_of(self, moment: datetime) -> dict:
        return {
            "self": f"{JIRA_PUBLIC}/rest/api/2/version/{self.id}",
            "id": self.id,
            "name": self.name,
            "description": "",
            "archived": False,
            "released": moment.date() >= self.release,
            "releaseDate": self.release.isoformat(),
        }


@dataclass(frozen=True)
class JStep:
    kind: str  # sprint | fix_version | duedate | resolve
    at: datetime
    value: object = None  # Sprint, Version, date, or the resolution name


@dataclass(frozen=True)
class JiraIssue:
    number: int
    summary: str
    created: datetime
    points: float
    steps: tuple[JStep, ...]

    @property
    def key(self) -> str:
        return f"{PROJECT}-{self.number}"

    @property
    def id(self) -> str:
        return str(10000 + self.number)


@dataclass
class Story:
    milestones: tuple[Milestone, ...]
    github: tuple[GhItem, ...]
    sprint: Sprint
    version: Version
    jira: tuple[JiraIssue, ...]


S42 = Milestone(42, "Sprint 42", date(2024, 3, 8), t("2024-02-23 09:00"))
S43 = Milestone(43, "Sprint 43", date(2024, 3, 22), t("2024-02-23 09:01"))
SPRINT_7 = Sprint(7, "TES Sprint 7", t("2024-02-26 08:00"), t("2024-03-08 17:00"),
                  t("2024-03-08 17:30"))  # fmt: skip
V2 = Version("10200", "2.0", date(2024, 3, 15))
MERGED = t("2024-03-05 14:00:00")


def story() -> Story:
    move = t("2024-03-06 15:00")
    github = (
        GhItem(10, "Export the ledger as CSV", t("2024-02-26 09:00"), labels=("size:M",),
               steps=(Step("milestoned", t("2024-02-26 09:15"), S42),
                      # The re-promise: a move sends milestoned(new) and demilestoned(old) in
                      # one second.
                      Step("milestoned", move, S43),
                      Step("demilestoned", move, S42),
                      Step("closed", t("2024-03-20 12:00"), reason="completed"))),
        GhItem(11, "Badge shows a stale rate", t("2024-02-26 09:30"), labels=("size:S",),
               born_in=S42,
               steps=(Step("closed", t("2024-03-04 10:00"), reason="completed"),
                      Step("reopened", t("2024-03-05 09:00")),
                      Step("closed", t("2024-03-08 16:00"), reason="completed"))),
        GhItem(12, "Jira keys in branch names are not linked", t("2024-02-27 09:00"),
               labels=("size:S",),
               steps=(Step("milestoned", t("2024-02-27 09:05"), S42),
                      # GitHub closes the issue itself, a moment after the merge.
                      Step("closed", t("2024-03-05 14:00:02"), reason="completed", by_pr=13))),
        GhItem(13, "Link Jira keys from head branches", t("2024-03-01 10:00"), pr=True,
               body="Reads the key from the branch name.\n\nFixes #12",
               head="fix-12-branch-links",
               steps=(Step("milestoned", t("2024-03-01 10:01"), S42),
                      Step("merged", MERGED))),
        GhItem(14, "Slow record query on PostgreSQL", t("2024-02-28 09:00"), labels=("size:L",),
               steps=(Step("milestoned", t("2024-02-28 09:10"), S42),
                      Step("closed", t("2024-03-12 11:00"), reason="completed"))),
    )  # fmt: skip
    jira = (
        JiraIssue(101, "Importer for sprint-planned work", t("2024-02-26 09:00"), 3.0,
                  (JStep("sprint", t("2024-02-26 11:00"), SPRINT_7),
                   JStep("resolve", t("2024-03-07 15:00"), "Done"))),
        JiraIssue(102, "Release notes generator", t("2024-02-27 10:00"), 5.0,
                  (JStep("fix_version", t("2024-02-28 10:00"), V2),
                   JStep("resolve", t("2024-03-15 18:00"), "Done"))),
        JiraIssue(103, "Legacy XML export", t("2024-02-27 11:00"), 2.0,
                  (JStep("duedate", t("2024-02-29 09:00"), date(2024, 3, 11)),
                   JStep("resolve", t("2024-03-06 10:00"), "Won't Do"))),
    )  # fmt: skip
    return Story((S42, S43), github, SPRINT_7, V2, jira)


# --- GitHub objects ---------------------------------------------------------------------------


def _octokit() -> dict:
    return json_of("github/issues.opened.json")


def _user() -> dict:
    return copy.deepcopy(_octokit()["sender"])


def _repository() -> dict:
    return copy.deepcopy(_octokit()["repository"])


def _label(name: str, api: str) -> dict:
    return {"id": 5000 + sum(map(ord, name)), "node_id": f"LA_{name}",
            "url": f"{api}/repos/{REPO}/labels/{name}", "name": name, "color": "ededed",
            "default": False, "description": None}  # fmt: skip


def _milestone(m: Milestone | None, api: str) -> dict | None:
    if m is None:
        return None
    doc = copy.deepcopy(json_of("github/issues.milestoned.json")["milestone"])
    doc.update(
        url=f"{api}/repos/{REPO}/milestones/{m.number}",
        html_url=f"https://github.com/{REPO}/milestone/{m.number}",
        labels_url=f"{api}/repos/{REPO}/milestones/{m.number}/labels",
        id=4317500 + m.number,
        node_id=f"MI_{m.number}",
        number=m.number,
        title=m.title,
        description="",
        state="open",
        open_issues=0,
        closed_issues=0,
        created_at=gh_time(m.created),
        updated_at=gh_time(m.created),
        due_on=m.due_on,
        closed_at=None,
    )
    return doc


@dataclass
class _GhState:
    state: str = "open"
    milestone: Milestone | None = None
    closed_at: datetime | None = None
    state_reason: str | None = None
    updated_at: datetime | None = None
    merged_at: datetime | None = None


def _gh_states(item: GhItem) -> list[tuple[Step | None, _GhState]]:
    """The item after its opening and after each step (GitHub's payloads show the state after
    the change they report)."""
    s = _GhState(milestone=item.born_in, updated_at=item.opened)
    out: list[tuple[Step | None, _GhState]] = [(None, copy.copy(s))]
    for step in item.steps:
        s.updated_at = step.at
        if step.action == "milestoned":
            s.milestone = step.milestone
        elif step.action == "demilestoned" and s.milestone == step.milestone:
            s.milestone = None
        elif step.action == "closed":
            s.state, s.closed_at, s.state_reason = "closed", step.at, step.reason
        elif step.action == "merged":
            s.state, s.closed_at, s.merged_at = "closed", step.at, step.at
        elif step.action == "reopened":
            # GitHub keeps the old closed_at on a reopened issue.
            s.state, s.state_reason = "open", "reopened"
        out.append((step, copy.copy(s)))
    return out


def _issue(item: GhItem, s: _GhState, api: str) -> dict:
    doc = copy.deepcopy(_octokit()["issue"])
    n = item.number
    doc.update(
        url=f"{api}/repos/{REPO}/issues/{n}",
        repository_url=f"{api}/repos/{REPO}",
        labels_url=f"{api}/repos/{REPO}/issues/{n}/labels{{/name}}",
        comments_url=f"{api}/repos/{REPO}/issues/{n}/comments",
        events_url=f"{api}/repos/{REPO}/issues/{n}/events",
        html_url=f"https://github.com/{REPO}/{'pull' if item.pr else 'issues'}/{n}",
        id=444500000 + n,
        node_id=f"I_{n}",
        number=n,
        title=item.title,
        labels=[_label(name, api) for name in item.labels],
        state=s.state,
        state_reason=s.state_reason,
        milestone=_milestone(s.milestone, api),
        comments=0,
        created_at=gh_time(item.opened),
        updated_at=gh_time(s.updated_at),
        closed_at=gh_time(s.closed_at),
        author_association="OWNER",
        body=item.body,
    )
    return doc


def _pull(item: GhItem, s: _GhState, api: str) -> dict:
    doc = copy.deepcopy(json_of("github/pull_request.closed.merged.json")["pull_request"])
    n, repo = item.number, _repository()
    for side in ("head", "base"):
        doc[side].update(user=_user(), repo=copy.deepcopy(repo))
    doc["head"].update(label=f"Codertocat:{item.head}", ref=item.head)
    doc["base"].update(label="Codertocat:main", ref="main")
    doc.update(
        url=f"{api}/repos/{REPO}/pulls/{n}",
        html_url=f"https://github.com/{REPO}/pull/{n}",
        diff_url=f"https://github.com/{REPO}/pull/{n}.diff",
        patch_url=f"https://github.com/{REPO}/pull/{n}.patch",
        issue_url=f"{api}/repos/{REPO}/issues/{n}",
        commits_url=f"{api}/repos/{REPO}/pulls/{n}/commits",
        review_comments_url=f"{api}/repos/{REPO}/pulls/{n}/comments",
        comments_url=f"{api}/repos/{REPO}/issues/{n}/comments",
        id=392188000 + n,
        node_id=f"PR_{n}",
        number=n,
        state=s.state,
        title=item.title,
        user=_user(),
        body=item.body,
        labels=[_label(name, api) for name in item.labels],
        milestone=_milestone(s.milestone, api),
        created_at=gh_time(item.opened),
        updated_at=gh_time(s.updated_at),
        closed_at=gh_time(s.closed_at),
        merged_at=gh_time(s.merged_at),
        merged=s.merged_at is not None,
        merged_by=_user() if s.merged_at else None,
        merge_commit_sha=f"{n:040x}",
        author_association="OWNER",
    )
    doc.pop("_links", None)
    return doc


def _payload(item: GhItem, step: Step | None, s: _GhState) -> tuple[str, dict]:
    action = "opened" if step is None else "closed" if step.action == "merged" else step.action
    doc: dict = {"action": action}
    if item.pr:
        doc.update(number=item.number, pull_request=_pull(item, s, GITHUB_PUBLIC))
    else:
        doc["issue"] = _issue(item, s, GITHUB_PUBLIC)
    if step is not None and step.action in ("milestoned", "demilestoned"):
        doc["milestone"] = _milestone(step.milestone, GITHUB_PUBLIC)
    doc.update(repository=_repository(), sender=_user())
    return ("pull_request" if item.pr else "issues"), doc


# --- Jira objects -----------------------------------------------------------------------------

_RESOLUTIONS = {"Done": "10000", "Won't Do": "10001"}
_JIRA_FIXTURE = {
    "created": "jira/jira.issue_created.json",
    "sprint": "jira/jira.issue_updated.sprint.json",
    "fix_version": "jira/jira.issue_updated.fix_version.json",
    "duedate": "jira/jira.issue_updated.status_in_progress.json",
    "resolve": "jira/jira.issue_updated.resolved.json",
}


def _statuses() -> tuple[dict, dict]:
    todo = json_of("jira/jira.issue_created.json")["issue"]["fields"]["status"]
    done = json_of("jira/jira.issue_updated.resolved.json")["issue"]["fields"]["status"]
    return todo, done


def _jira_fields(issue: JiraIssue, steps: int, at: datetime, base: dict) -> dict:
    """The issue's fields after its first `steps` changes, as Jira shows them at `at`."""
    todo, done = _statuses()
    fields = copy.deepcopy(base)
    fields.update(
        summary=issue.summary,
        created=jira_time(issue.created),
        updated=jira_time(issue.steps[steps - 1].at if steps else issue.created),
        duedate=None,
        fixVersions=[],
        status=copy.deepcopy(todo),
        resolution=None,
        resolutiondate=None,
        lastViewed=None,
    )
    fields[SPRINT_FIELD] = None
    fields[POINTS_FIELD] = issue.points
    fields["project"] = {**fields["project"], "key": PROJECT}
    for step in issue.steps[:steps]:
        if step.kind == "sprint":
            fields[SPRINT_FIELD] = [step.value.as_of(at)]
        elif step.kind == "fix_version":
            fields["fixVersions"] = [step.value.as_of(at)]
        elif step.kind == "duedate":
            fields["duedate"] = step.value.isoformat()
        elif step.kind == "resolve":
            fields["status"] = copy.deepcopy(done)
            fields["resolution"] = {
                "self": f"{JIRA_PUBLIC}/rest/api/2/resolution/{_RESOLUTIONS[step.value]}",
                "id": _RESOLUTIONS[step.value],
                "description": "",
                "name": step.value,
            }
            fields["resolutiondate"] = jira_time(step.at)
    return fields


def _changelog_items(step: JStep) -> list[dict]:
    def item(field_, fieldtype, field_id, to, to_string, old=None, old_string=None):
        return {"field": field_, "fieldtype": fieldtype, "fieldId": field_id, "from": old,
                "fromString": old_string, "to": to, "toString": to_string}  # fmt: skip

    if step.kind == "sprint":
        sprint = step.value
        return [item("Sprint", "custom", SPRINT_FIELD, str(sprint.id), sprint.name, "", "")]
    if step.kind == "fix_version":
        return [item("Fix Version", "jira", "fixVersions", step.value.id, step.value.name)]
    if step.kind == "duedate":
        day = step.value.isoformat()
        return [item("duedate", "jira", "duedate", day, f"{day} 00:00:00.0")]
    return [
        item("resolution", "jira", "resolution", _RESOLUTIONS[step.value], step.value),
        item("status", "jira", "status", "10002", "Done", "10001", "To Do"),
    ]


def _history_id(issue: JiraIssue, n: int) -> str:
    return str(20000 + issue.number * 10 + n)


def _jira_payload(issue: JiraIssue, steps: int) -> dict:
    kind = issue.steps[steps - 1].kind if steps else "created"
    at = issue.steps[steps - 1].at if steps else issue.created
    doc = copy.deepcopy(json_of(_JIRA_FIXTURE[kind]))
    doc["timestamp"] = jira_ms(at)
    doc["issue"].update(
        id=issue.id, key=issue.key, self=f"{JIRA_PUBLIC}/rest/api/2/issue/{issue.id}"
    )
    doc["issue"]["fields"] = _jira_fields(issue, steps, at, doc["issue"]["fields"])
    if steps:
        step = issue.steps[steps - 1]
        doc["changelog"] = {"id": _history_id(issue, steps), "items": _changelog_items(step)}
    else:
        doc.pop("changelog", None)
    return doc


# --- renderings -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    source: str  # "github" | "jira"
    event: str | None  # X-GitHub-Event
    body: dict = field(repr=False)
    id: str
    item: str | None  # the item's key; None for a sprint or version delivery
    at: datetime
    closes: bool  # a close, merge or resolution of `item`
    label: str = ""


def webhooks(st: Story) -> list[Delivery]:
    """Every delivery of the story, in event order (a move's two deliveries in GitHub's
    order), with stable delivery ids."""
    found: list[tuple[datetime, int, Delivery]] = []

    def add(source, event, body, item, at, closes, label) -> None:
        seq = len(found)
        ident = str(uuid.uuid5(_IDS, f"{source}-{seq}"))
        found.append((at, seq, Delivery(source, event, body, ident, item, at, closes, label)))

    for item in st.github:
        for step, state in _gh_states(item):
            event, doc = _payload(item, step, state)
            at = item.opened if step is None else step.at
            closes = step is not None and step.action in ("closed", "merged")
            add("github", event, doc, item.key, at, closes, f"#{item.number} {doc['action']}")
    for issue in st.jira:
        for n in range(len(issue.steps) + 1):
            at = issue.steps[n - 1].at if n else issue.created
            closes = bool(n) and issue.steps[n - 1].kind == "resolve"
            kind = issue.steps[n - 1].kind if n else "created"
            add("jira", None, _jira_payload(issue, n), f"jira:{issue.key}", at, closes,
                f"{issue.key} {kind}")  # fmt: skip
    # The sprint events' sprint names its site in `self` (Cloud's sprint field entries do not).
    sprint = {
        **st.sprint.as_of(st.sprint.start),
        "self": f"{JIRA_PUBLIC}/rest/agile/1.0/sprint/{st.sprint.id}",
    }
    started = {"timestamp": jira_ms(st.sprint.start), "webhookEvent": "sprint_started",
               "sprint": sprint}  # fmt: skip
    add("jira", None, started, None, st.sprint.start, False, "sprint 7 started")
    return [d for _, _, d in sorted(found, key=lambda f: (f[0], f[1]))]


def from_first_close(deliveries: list[Delivery]) -> list[Delivery]:
    """Path 3: of each item, only the deliveries from its first close onwards; the planning
    deliveries (opened, milestoned, created, field changes, sprint started) never arrived."""
    first: dict[str, datetime] = {}
    for d in deliveries:
        if d.closes and d.item not in first:
            first[d.item] = d.at
    return [d for d in deliveries if d.item in first and d.at >= first[d.item]]


def _timeline_entry(entries: list[dict], number: int, actor: dict, api: str):
    def entry(event: str, at: datetime, **extra) -> None:
        n = number * 100 + len(entries)
        entries.append({"id": n, "node_id": f"E_{n}", "event": event, "actor": actor,
                        "url": f"{api}/repos/{REPO}/issues/events/{n}", "commit_id": None,
                        "commit_url": None, "created_at": gh_time(at),
                        "performed_via_github_app": None, **extra})  # fmt: skip

    return entry


def github_api(st: Story, api: str) -> dict:
    """The REST objects backfill reads, with URLs on `api` (PyGithub follows them)."""
    milestones = [_milestone(m, api) for m in st.milestones]
    for m in milestones:
        m.update(state="closed", closed_at=gh_time(READ_AT))
    issues, timelines, pulls = [], {}, {}
    actor = _user()
    for item in st.github:
        _, now = _gh_states(item)[-1]
        issue = _issue(item, now, api)
        entries: list[dict] = []
        entry = _timeline_entry(entries, item.number, actor, api)
        if item.born_in is not None:
            # An item born in a milestone has a `milestoned` entry at its creation.
            entry("milestoned", item.opened, milestone={"title": item.born_in.title})
        for step in item.steps:
            if step.action in ("milestoned", "demilestoned"):
                entry(step.action, step.at, milestone={"title": step.milestone.title})
            elif step.action == "closed":
                sha = f"{step.by_pr:040x}" if step.by_pr else None
                entry("closed", step.at, state_reason=step.reason, commit_id=sha)
            elif step.action == "reopened":
                entry("reopened", step.at, state_reason="reopened")
            elif step.action == "merged":
                sha = f"{item.number:040x}"
                entry("merged", step.at, commit_id=sha)
                entry("closed", step.at, commit_id=sha)
        if item.pr:
            pull = _pull(item, now, api)
            issue["pull_request"] = {"url": pull["url"], "html_url": pull["html_url"],
                                     "diff_url": pull["diff_url"], "patch_url": pull["patch_url"],
                                     "merged_at": pull["merged_at"]}  # fmt: skip
            pulls[item.number] = pull
        issues.append(issue)
        timelines[item.number] = entries
    return {"milestones": milestones, "issues": issues, "timelines": timelines, "pulls": pulls}


def jira_api(st: Story) -> dict:
    """The REST issues (fields as they are now, whole changelog) and the project's versions.

    Their `self` links name the site that sent the webhooks, as Jira's own links name its base
    URL whatever address the client used (the site is part of sprint and version scope keys).
    """
    base = json_of("jira/jira.issue_created.json")["issue"]["fields"]
    author = json_of("jira/jira.issue_created.json")["user"]
    issues = []
    for issue in st.jira:
        histories = [
            {"id": _history_id(issue, n), "author": author, "created": jira_time(step.at),
             "items": _changelog_items(step)}
            for n, step in enumerate(issue.steps, start=1)
        ]  # fmt: skip
        issues.append(
            {
                "expand": "renderedFields,names,schema,operations,editmeta,changelog",
                "id": issue.id,
                "self": f"{JIRA_PUBLIC}/rest/api/2/issue/{issue.id}",
                "key": issue.key,
                "fields": _jira_fields(issue, len(issue.steps), READ_AT, base),
                "changelog": {
                    "startAt": 0,
                    "maxResults": len(histories),
                    "total": len(histories),
                    "histories": histories,
                },  # fmt: skip
            }
        )
    return {"issues": issues, "versions": [st.version.as_of(READ_AT)]}
