"""The demo's story: a year of one organisation's promises, as plain plans (no I/O).

`build_story(teams, seed, now)` gives every item of every team with its steps (planned, moved,
closed, dropped, reopened, merged), each at its own time, and the containers that carry the
promises (GitHub milestones, Jira sprints and fix versions). Steps later than `now` are cut, so
the last weeks are still open. cli/demo_reading.py reads them as the ledger does.

The same seed gives the same story (and, in cli/demo_payloads.py, the same delivery ids), so a
second run sends only duplicates.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from cli.demo_titles import GH_TITLES, JIRA_TITLES

# How often each team keeps its word: early, on time, late, dropped, missed (weights). Teams get
# them in configuration order, so the overview shows a reliable team and two that are less so.
PROFILES = (
    (30, 40, 15, 7, 8),
    (20, 30, 30, 8, 12),
    (10, 25, 40, 10, 15),
)
OUTCOMES = ("early", "on_time", "late", "dropped", "missed")
DAYS = 364  # a year of history, ending today
# An item is "settled history" when its milestone ended this long ago: everything it does fits.
SETTLED_AFTER = timedelta(days=12)


@dataclass(frozen=True)
class DemoTeam:
    name: str
    client: str
    timezone: str
    repo: str | None  # the GitHub repository the demo writes to, if any
    project: str | None  # the Jira project key, if any
    site: str  # the Jira site, e.g. https://acme.atlassian.net


@dataclass(frozen=True)
class Container:
    """A GitHub milestone, a Jira sprint or a Jira fix version: what carries a promised day."""

    kind: str  # milestone | sprint | version
    number: int
    title: str
    due: date  # the promised day, in the team's calendar
    opened: datetime  # milestone created, sprint started, version created
    end: datetime | None = None  # a sprint's end instant


@dataclass(frozen=True)
class Step:
    action: str  # plan | move | due | close | drop | reopen | merge
    at: datetime
    container: Container | None = None  # plan, move
    due: date | None = None  # due: a Jira due date set or moved


@dataclass(frozen=True)
class Item:
    team: str
    platform: str  # github | jira
    source: str  # owner/repo or the Jira project key
    number: int
    title: str
    opened: datetime
    steps: tuple[Step, ...]
    pr: bool = False
    born_in: Container | None = None

    @property
    def key(self) -> str:
        if self.platform == "github":
            return f"github:{self.source}#{self.number}"
        return f"jira:{self.source}-{self.number}"


@dataclass(frozen=True)
class Story:
    teams: tuple[DemoTeam, ...]
    containers: dict[str, tuple[Container, ...]]  # team -> its milestones, sprints, versions
    items: tuple[Item, ...]
    now: datetime


def _at(day: date, hour: int, tz: ZoneInfo, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tz).astimezone(UTC)


def _bag(rng: random.Random, profile: tuple[int, ...], n: int) -> list[str]:
    """n outcomes in the profile's proportions, at least one of each, in a seeded order."""
    total = sum(profile)
    out: list[str] = []
    for name, weight in zip(OUTCOMES, profile, strict=True):
        out += [name] * max(1, round(weight * n / total))
    rng.shuffle(out)
    return (out + [rng.choice(OUTCOMES[:3]) for _ in range(n)])[:n]


def _ending(outcome: str, due: date, tz: ZoneInfo, rng: random.Random) -> list[Step]:
    """How a promise for `due` ends: at midday or after, never near a day's edge."""
    if outcome == "early":
        return [Step("close", _at(due - timedelta(days=rng.randint(1, 5)), 14, tz))]
    if outcome == "on_time":
        return [Step("close", _at(due, 12, tz, rng.randint(0, 59)))]
    if outcome == "late":
        return [Step("close", _at(due + timedelta(days=rng.randint(1, 9)), 14, tz))]
    if outcome == "dropped":
        return [Step("drop", _at(due - timedelta(days=rng.randint(0, 4)), 11, tz))]
    return []  # missed: still open when its day has passed


class _Plan:
    """One team's items, numbered as they are made."""

    def __init__(self, team: DemoTeam, seed: int, index: int, now: datetime):
        self.team, self.now = team, now
        self.tz = ZoneInfo(team.timezone)
        self.rng = random.Random(f"{seed}:{team.name}")
        self.profile = PROFILES[index % len(PROFILES)]
        self.start = now.astimezone(self.tz).date() - timedelta(days=DAYS)
        self.items: list[Item] = []
        self.containers: list[Container] = []
        self.numbers = {"github": 0, "jira": 0}
        self.base = 1000 * (index + 1)  # sprint and version ids: unique on a shared site

    def item(self, platform: str, title: str, opened: datetime, steps: list[Step], **kw) -> None:
        self.numbers[platform] += 1
        source = self.team.repo if platform == "github" else self.team.project
        cut = tuple(s for s in steps if s.at <= self.now)
        if opened <= self.now:
            self.items.append(
                Item(
                    self.team.name,
                    platform,
                    source,
                    self.numbers[platform],
                    title,
                    opened,
                    cut,
                    **kw,
                )
            )

    def settled(self, due: date) -> bool:
        return _at(due, 0, self.tz) + SETTLED_AFTER < self.now

    def promised(
        self,
        platform: str,
        title: str,
        due: date,
        plan: list[Step],
        opened: datetime,
        outcome: str,
        later: Step | None,
        born_in: Container | None = None,
    ) -> None:
        """An item promised for `due`; when settled, sometimes reopened or re-promised."""
        steps = list(plan)
        reopen = outcome in ("early", "on_time", "late") and self.rng.random() < 0.15
        if reopen:  # closed too soon, reopened the next morning
            steps += [
                Step("close", _at(due - timedelta(days=9), 15, self.tz)),
                Step("reopen", _at(due - timedelta(days=8), 10, self.tz)),
            ]
        if later is not None and outcome in ("late", "missed") and self.rng.random() < 0.4:
            steps.append(later)  # re-promised a few days before the first date
        steps += _ending(outcome, due, self.tz, self.rng)
        self.item(platform, title, opened, sorted(steps, key=lambda s: s.at), born_in=born_in)

    def github(self, outcomes: list[str]) -> None:
        tz, rng = self.tz, self.rng
        milestones = []
        for k in range(DAYS // 28 + 2):
            due = self.start + timedelta(days=28 * (k + 1))
            opened = _at(due - timedelta(days=42), 9, tz)
            milestones.append(Container("milestone", k + 1, f"Iteration {k + 1}", due, opened))
        self.containers += milestones
        for k, m in enumerate(milestones):
            nxt = milestones[k + 1] if k + 1 < len(milestones) else None
            for _ in range(4):
                outcome = outcomes.pop() if self.settled(m.due) else rng.choice(OUTCOMES[:3])
                opened = _at(m.due - timedelta(days=rng.randint(26, 30)), 9 + rng.randint(0, 7), tz)
                born = rng.random() < 0.5
                plan = [] if born else [Step("plan", opened + timedelta(hours=1), m)]
                move = Step("move", _at(m.due - timedelta(days=4), 10, tz), nxt) if nxt else None
                title = GH_TITLES[self.numbers["github"] % len(GH_TITLES)]
                self.promised(
                    "github",
                    title,
                    m.due,
                    plan,
                    opened,
                    outcome,
                    move if self.settled(m.due) else None,
                    m if born else None,
                )
            if k % 2 == 0:  # unasked-for: an issue and a pull request nobody promised
                day = m.due - timedelta(days=20)
                self.item(
                    "github",
                    "Fix a typo in the API docs",
                    _at(day, 10, tz),
                    [Step("close", _at(day + timedelta(days=1), 15, tz))],
                )
                self.item(
                    "github",
                    "Upgrade the test dependencies",
                    _at(day, 11, tz),
                    [Step("merge", _at(day + timedelta(days=2), 16, tz))],
                    pr=True,
                )

    def jira(self, outcomes: list[str]) -> None:
        tz, rng = self.tz, self.rng
        for j in range(DAYS // 14 + 2):
            first = self.start + timedelta(days=14 * j)
            due = first + timedelta(days=13)
            sprint = Container(
                "sprint",
                self.base + j,
                f"{self.team.project} Sprint {j + 1}",
                due,
                _at(first, 9, tz),
                end=_at(due, 16, tz),
            )
            self.containers.append(sprint)
            settled = self.settled(due)
            title = JIRA_TITLES[self.numbers["jira"] % len(JIRA_TITLES)]
            opened = _at(first, 10, tz)
            outcome = outcomes.pop() if settled else rng.choice(OUTCOMES[:3])
            plan = [Step("plan", opened + timedelta(minutes=30), sprint)]
            self.promised("jira", title, due, plan, opened, outcome, None)
            # A due date a few days before the sprint's end; a re-promise moves it a week on.
            day = due - timedelta(days=3)
            opened = _at(day - timedelta(days=15), 11, tz)
            outcome = outcomes.pop() if settled else rng.choice(OUTCOMES[:3])
            later = Step("due", _at(day - timedelta(days=4), 10, tz), due=day + timedelta(days=7))
            title = JIRA_TITLES[self.numbers["jira"] % len(JIRA_TITLES)]
            self.promised(
                "jira",
                title,
                day,
                [Step("due", opened + timedelta(hours=1), due=day)],
                opened,
                outcome,
                later if settled else None,
            )
            if j % 4 == 1:  # a release every eight weeks, planned a month ahead
                version = Container(
                    "version",
                    self.base + 500 + j,
                    f"{2 + j // 8}.{j % 8}",
                    due,
                    _at(due - timedelta(days=35), 9, tz),
                )
                self.containers.append(version)
                opened = _at(due - timedelta(days=30), 9, tz)
                outcome = outcomes.pop() if settled else rng.choice(OUTCOMES[:3])
                plan = [Step("plan", opened + timedelta(hours=2), version)]
                self.promised(
                    "jira", "Release notes for " + version.title, due, plan, opened, outcome, None
                )
            if j % 4 == 3:  # unasked-for: done with no date ever set
                self.item(
                    "jira",
                    "Clean up stale feature flags",
                    _at(first, 14, tz),
                    [Step("close", _at(first + timedelta(days=2), 15, tz))],
                )


def build_story(teams: list[DemoTeam], seed: int, now: datetime) -> Story:
    items: list[Item] = []
    containers: dict[str, tuple[Container, ...]] = {}
    for index, team in enumerate(teams):
        plan = _Plan(team, seed, index, now)
        # Enough outcomes for every settled promise; popped from the end as items are made.
        outcomes = _bag(plan.rng, plan.profile, 200)
        if team.repo:
            plan.github(outcomes)
        if team.project:
            plan.jira(outcomes)
        items += plan.items
        containers[team.name] = tuple(c for c in plan.containers if c.opened <= now)
    return Story(tuple(teams), containers, tuple(items), now)
