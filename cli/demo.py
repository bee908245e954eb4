"""`trackrecord demo`: fill an empty trackrecord with a year of a made-up organisation's work.

It never writes a row: it signs each delivery of the story (cli/demo_story.py, rendered by
cli/demo_payloads.py) with the configured webhook secret and POSTs it to the running web app,
so the deliveries go through the real intake and the real workers like GitHub's and Jira's.
`--drain` runs a burst worker here, for when no worker runs.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import click

from cli.common import load_settings
from cli.demo_reading import tally
from cli.demo_story import DemoTeam, Story, build_story
from trackrecord.config import Settings, secret_for

SHOWN = ("early", "on_time", "late", "dropped", "missed", "pending", "unpromised")


def demo_teams(settings: Settings) -> list[DemoTeam]:
    """Each configured team with the first GitHub repository and Jira project it can sign for."""
    teams = []
    for client in settings.config.clients:
        for team in client.teams:
            mine = [s for s in settings.config.sources() if s.team == team.name]
            repo = next(
                (s.key for s in mine if s.kind == "github" and secret_for("github", s)), None
            )
            project = next(
                (s.key for s in mine if s.kind == "jira" and secret_for("jira", s)), None
            )
            if repo or project:
                site = f"https://{client.name.lower()}.atlassian.net"
                teams.append(DemoTeam(team.name, client.name, team.timezone, repo, project, site))
    return teams


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"{}")
        except ValueError:
            return exc.code, {}


def _wait_ready(base: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=5) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() >= deadline:
            raise click.ClickException(
                f"no trackrecord server is ready at {base}: start `trackrecord serve` (or "
                "`trackrecord up`) or pass --url"
            )
        time.sleep(1)


def send(story: Story, seed: int, base: str, settings: Settings) -> Counter:
    """POST every delivery, signed as its platform signs; returns the answers' statuses."""
    from cli.demo_payloads import deliveries
    from webhook_app.signatures import sign

    settings_cfg = settings.config
    sources = {t.name: t for t in story.teams}
    secrets = {}
    for team in sources.values():
        for kind, key in (("github", team.repo), ("jira", team.project)):
            if key:
                secrets[(kind, key)] = secret_for(kind, settings_cfg.source(kind, key))
    seen: Counter = Counter()
    items = deliveries(story, seed)
    for n, d in enumerate(items, 1):
        doc = json.loads(d.body)
        if d.platform == "github":
            key = doc["repository"]["full_name"]
            headers = {
                "X-GitHub-Event": d.event,
                "X-GitHub-Delivery": d.id,
                "X-Hub-Signature-256": sign(secrets[("github", key)], d.body),
                "Content-Type": "application/json",
            }
        else:
            key = doc["issue"]["fields"]["project"]["key"]
            headers = {
                "X-Atlassian-Webhook-Identifier": d.id,
                "X-Hub-Signature": sign(secrets[("jira", key)], d.body),
                "Content-Type": "application/json; charset=UTF-8",
            }
        try:
            status, answer = _post(f"{base}/webhooks/{d.platform}", d.body, headers)
        except (urllib.error.URLError, OSError) as exc:
            raise click.ClickException(
                f"cannot reach {base}: {getattr(exc, 'reason', exc)}"
            ) from None
        if status >= 400:
            raise click.ClickException(
                f"the server refused a {d.platform} delivery ({status} {answer.get('error')}: "
                f"{answer.get('message')}); do the demo and the server share the webhook secrets?"
            )
        seen[answer.get("status", str(status))] += 1
        if sys.stderr.isatty() and n % 100 == 0:
            click.echo(f"\r  sent {n} of {len(items)}", err=True, nl=False)
    if sys.stderr.isatty():
        click.echo("", err=True)
    return seen


def _unfinished(settings: Settings) -> int:
    from sqlalchemy import func, select

    from trackrecord.db import session_factory
    from trackrecord.models import Delivery, DeliveryStatus

    with session_factory(settings.database_url)() as s:
        return s.execute(
            select(func.count()).where(
                Delivery.status.in_((DeliveryStatus.PENDING, DeliveryStatus.QUEUED))
            )
        ).scalar_one()


def _delivery_count(settings: Settings) -> int:
    from sqlalchemy import func, select
    from sqlalchemy.exc import SQLAlchemyError

    from trackrecord.db import session_factory
    from trackrecord.models import Delivery

    try:
        with session_factory(settings.database_url)() as s:
            return s.execute(select(func.count()).select_from(Delivery)).scalar_one()
    except SQLAlchemyError:
        raise click.ClickException(
            "the database does not answer or has no tables: run `trackrecord db upgrade`"
        ) from None


def drain_queue(settings: Settings) -> None:
    """A burst worker in this process (no fork per job): the same jobs as `trackrecord worker`."""
    from rq import SimpleWorker

    from trackrecord.queue import get_queue, redis_from_url

    redis = redis_from_url(settings.redis_url)
    SimpleWorker([get_queue(redis, settings.queue_name)], connection=redis).work(burst=True)


def wait_processed(settings: Settings, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _unfinished(settings):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)
    return True


def where_to_look(story: Story, base: str) -> list[str]:
    counts = tally(story)
    today = story.now.date()
    # Through the open milestones too, so the pending promises of the tally are in the period.
    start, end = today - timedelta(days=365), today + timedelta(days=60)
    period = f"from={start}&to={end}"
    lines = ["", "What the demo built (outcomes as the ledger reads them today):"]
    for team in story.teams:
        c = counts[team.name]
        figures = " · ".join(f"{c[name]} {name.replace('_', ' ')}" for name in SHOWN)
        lines.append(
            f"  {team.name:10} ({team.client}, {team.timezone}): {figures}; "
            f"{c['repromised']} re-promised, {c['reopened']} reopened"
        )
    lines += [
        "",
        "Where to look (the pages and the API need a token: TRACKRECORD_ADMIN_TOKEN):",
        f"  overview        {base}/",
    ]
    for team in story.teams:
        lines.append(f"  team            {base}/teams/{team.name}")
    for client in dict.fromkeys(t.client for t in story.teams):
        lines.append(f"  client          {base}/clients/{client}")
    lines.append(f"  operator        {base}/operator")
    first = story.teams[0].name
    lines += [
        f"  API             {base}/api/v1/teams",
        f"                  {base}/api/v1/teams/{first}/track-record?{period}",
        f"                  {base}/api/v1/teams/{first}/milestones",
        f"                  {base}/api/v1/teams/{first}/commitments?{period}",
        f"  badge           {base}/badges/{first}.svg",
        "  CLI",
    ]
    for team in story.teams:
        lines.append(f"    trackrecord record {team.name} --from {start} --to {end}")
    return lines


@click.command()
@click.option(
    "--url",
    default="http://127.0.0.1:8000",
    show_default=True,
    help="The running web app (`trackrecord serve`) to send the webhooks to.",
)
@click.option(
    "--seed",
    default=1,
    show_default=True,
    type=int,
    help="The same seed builds the same organisation (and the same delivery ids).",
)
@click.option(
    "--today",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="The day the year of history ends (default: today).",
)
@click.option(
    "--now",
    "at",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S"]),
    default=None,
    help="The moment the history ends (ISO 8601, UTC without an offset; default: now). Steps "
    "after it are not sent: a run with the same seed and moment sends the same deliveries.",
)
@click.option("--drain", is_flag=True, help="Process the queue here with a burst worker.")
@click.option(
    "--wait",
    "wait_seconds",
    default=180.0,
    show_default=True,
    help="Seconds to wait for the workers to process what was sent.",
)
@click.option(
    "--wait-for-server",
    default=0.0,
    show_default=True,
    help="Seconds to wait for the server to answer /readyz before sending.",
)
@click.option("--json", "as_json", is_flag=True, help="Say what was built as JSON.")
@click.option("--if-empty", is_flag=True, help="Do nothing when the database has deliveries.")
def demo(url, seed, today, at, drain, wait_seconds, wait_for_server, as_json, if_empty) -> None:
    """Build a made-up organisation's year of work by sending signed webhooks."""
    settings = load_settings()
    base = url.rstrip("/")
    teams = demo_teams(settings)
    if not teams:
        raise click.ClickException(
            "no team has a source with a webhook secret: point TRACKRECORD_CONFIG at "
            "deploy/trackrecord.example.toml and set GITHUB_WEBHOOK_SECRET and JIRA_WEBHOOK_SECRET"
        )
    if wait_for_server:
        _wait_ready(base, wait_for_server)
    if if_empty and _delivery_count(settings):
        click.echo("trackrecord demo: the database already holds deliveries; nothing sent")
        return
    if today is not None and at is not None:
        raise click.UsageError("give --today or --now, not both")
    now = datetime.now(UTC).replace(microsecond=0)
    if at is not None:
        now = at if at.tzinfo else at.replace(tzinfo=UTC)
    if today is not None:
        now = datetime.combine(date(today.year, today.month, today.day), now.timetz())
    try:
        story = build_story(teams, seed, now)
        seen = send(story, seed, base, settings)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from None
    if not as_json:
        click.echo(
            f"sent {sum(seen.values())} deliveries to {base}: "
            + ", ".join(f"{n} {status}" for status, n in sorted(seen.items()))
        )
    if drain:
        drain_queue(settings)
    if not wait_processed(settings, wait_seconds):
        raise click.ClickException(
            f"deliveries still wait after {wait_seconds:.0f} s: is a worker running "
            "(`trackrecord worker`)? Or pass --drain"
        )
    if as_json:
        teams_built = {name: dict(counts) for name, counts in tally(story).items()}
        out = {"sent": dict(seen), "teams": teams_built, "now": now.isoformat()}
        click.echo(json.dumps(out, sort_keys=True))
        return
    for line in where_to_look(story, base):
        click.echo(line)
