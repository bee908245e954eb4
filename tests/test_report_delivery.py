"""Monthly reports delivered (issue 10): the real PyGithub client against a stub GitHub that
records every request, and smtplib against a real local SMTP server (aiosmtpd). Each channel
gets a month's report exactly once: under repeated schedules, racing jobs, a fault after GitHub
stored the issue, an SMTP server that says "try later" or is down; a deliberate re-send is a
new delivery under its own key."""

from __future__ import annotations

import email
import json
import os
import re
import threading
from datetime import UTC, datetime, timedelta

import port_for
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from sqlalchemy import select, update
from werkzeug import Request, Response

from ledger.report_rows import ReportFile, ReportSend
from trackrecord.db import session_factory
from workers import report_jobs
from workers.report_jobs import build_monthly_report, resend, send_monthly_report

ME = "trackrecord-bot"
REPO = "acme-corp/reports"
MONTH = "2026-10"

CONFIG = """
[[clients]]
name = "acme"
timezone = "Europe/Berlin"
token_env = "ACME_API_TOKEN"

[clients.report]
hour = 8
github_issue_repo = "acme-corp/reports"
email_to = ["cto@acme.example", "pm@acme.example"]
email_from = "Track record <reports@trackrecord.example>"

[[clients.teams]]
name = "platform"
github = ["Codertocat/Hello-World"]

[[clients]]
name = "globex"
token_env = "GLOBEX_API_TOKEN"

[[clients.teams]]
name = "ops"
github = ["globex/ops"]
"""


@pytest.fixture
def config_path(tmp_path):
    path = tmp_path / "trackrecord.toml"
    path.write_text(CONFIG)
    return path


def reply(body, status=200, headers=None) -> Response:
    return Response(json.dumps(body), status=status, headers=headers or {},
                    content_type="application/json; charset=utf-8")  # fmt: skip


class StubGithub:
    """A repository's issues as GitHub keeps them; `faults` answer once each, before (or, with
    `after=True`, after) the request is applied."""

    def __init__(self) -> None:
        self.issues: list[dict] = []
        self.created: list[dict] = []
        self.faults: list = []  # (predicate(request), respond(request), after)
        self.lock = threading.Lock()

    def __call__(self, request: Request) -> Response:
        with self.lock:
            fault = next((f for f in self.faults if f[0](request)), None)
            if fault is not None:
                self.faults.remove(fault)
                if not fault[2]:
                    return fault[1](request)
            answer = self._answer(request)
            return fault[1](request) if fault is not None else answer

    def _answer(self, request: Request) -> Response:
        if request.path == "/user":
            return reply({"login": ME, "id": 1, "type": "User"})
        if request.path != f"/repos/{REPO}/issues":
            return reply({"message": "Not Found"}, 404)
        if request.method == "POST":
            doc = json.loads(request.data)
            issue = {"number": len(self.issues) + 1, "title": doc["title"], "body": doc["body"],
                     "state": "open", "user": {"login": ME, "id": 1, "type": "User"}}  # fmt: skip
            self.issues.append(issue)
            self.created.append(issue)
            return reply(issue, 201)
        creator = request.args.get("creator")
        found = [i for i in self.issues if creator in (None, i["user"]["login"])]
        return reply(list(reversed(found)))


class Inbox:
    """What the SMTP server accepted; `refuse` answers DATA with a temporary failure that many
    times first."""

    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []
        self.logins: list[tuple[bytes, bytes]] = []
        self.refuse = 0

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        self.logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"s3cret")

    async def handle_DATA(self, server, session, envelope):
        if self.refuse:
            self.refuse -= 1
            return "451 4.3.0 mailbox busy, try again later"
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def gh(env, httpserver, monkeypatch):
    monkeypatch.setenv("GITHUB_API_URL", httpserver.url_for("/").rstrip("/"))
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_report_token")
    stub = StubGithub()
    httpserver.expect_request(re.compile(".*")).respond_with_handler(stub)
    return stub


@pytest.fixture
def smtp(env, monkeypatch):
    inbox = Inbox()
    port = port_for.select_random()
    # Login without TLS, which aiosmtpd refuses by default: a test server has no certificate.
    controller = Controller(inbox, hostname="127.0.0.1", port=port,
                            authenticator=inbox.authenticate, auth_require_tls=False)  # fmt: skip
    controller.start()
    monkeypatch.setenv("SMTP_URL", f"smtp://reports:s3cret@127.0.0.1:{port}?timeout=10")
    yield inbox
    controller.stop()


def sends(settings) -> list[ReportSend]:
    with session_factory(settings.database_url)() as s:
        return list(s.scalars(select(ReportSend).order_by(ReportSend.id)))


def files(settings) -> dict[tuple[str, str, str], datetime]:
    with session_factory(settings.database_url)() as s:
        rows = s.scalars(select(ReportFile))
        return {(r.client, r.month, r.format): r.built_at for r in rows}


def make_due(settings, send_id: int) -> None:
    """The retry's time has come (the test does not wait out the backoff)."""
    with session_factory(settings.database_url)() as s, s.begin():
        s.execute(update(ReportSend).where(ReportSend.id == send_id).values(not_before=None))


def test_a_built_month_goes_out_once_per_channel(settings, gh, smtp):
    ids = build_monthly_report("acme", MONTH)
    assert len(ids) == 2
    assert {k[2] for k in files(settings) if k[:2] == ("acme", MONTH)} == {
        "html", "pdf", "md", "json"
    }  # fmt: skip
    for sid in ids:
        assert send_monthly_report(sid) == "sent"
        assert send_monthly_report(sid) == "not_claimable"
    # Building again records nothing new and sends nothing.
    assert build_monthly_report("acme", MONTH) == []
    assert [i["title"] for i in gh.created] == [f"Track record for {MONTH}: acme"]
    assert f"<!-- trackrecord:report:acme:{MONTH}:0 -->" in gh.created[0]["body"]
    assert len(smtp.messages) == 1 and smtp.logins == [(b"reports", b"s3cret")]
    msg = smtp.messages[0]
    assert msg["Message-ID"] == f"<trackrecord-report.acme.{MONTH}@trackrecord.example>"
    assert msg["To"] == "cto@acme.example, pm@acme.example"
    pdf = [p for p in msg.walk() if p.get_content_type() == "application/pdf"]
    assert len(pdf) == 1 and pdf[0].get_payload(decode=True).startswith(b"%PDF")
    by_channel = {s.channel: s for s in sends(settings)}
    assert by_channel["github"].status == "sent" and by_channel["github"].external_id == "1"
    assert by_channel["email"].external_id == msg["Message-ID"]
    assert all(s.attempts == 1 and s.error is None for s in by_channel.values())


def test_racing_jobs_send_once(settings, gh, smtp):
    # Two schedulers' builds at once, then four workers on each send row at once.
    barrier = threading.Barrier(2)
    results: list = []

    def build():
        barrier.wait()
        results.append(build_monthly_report("acme", MONTH))

    threads = [threading.Thread(target=build) for _ in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    ids = sorted({i for r in results for i in r})
    assert len(ids) == 2 and len(files(settings)) == 4
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def send(sid):
        barrier.wait()
        outcomes.append(send_monthly_report(sid))

    threads = [threading.Thread(target=send, args=(sid,)) for sid in ids for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(outcomes).count("sent") == 2
    assert len(gh.created) == 1 and len(smtp.messages) == 1


def test_smtp_try_later_then_success_sends_once(settings, gh, smtp):
    smtp.refuse = 1
    ids = build_monthly_report("acme", MONTH)
    mail_id = next(s.id for s in sends(settings) if s.channel == "email")
    assert send_monthly_report(mail_id) == "retry"
    row = next(s for s in sends(settings) if s.id == mail_id)
    assert row.status == "pending" and row.attempts == 1 and "451" in row.error
    assert row.not_before is not None and smtp.messages == []
    assert send_monthly_report(mail_id) == "not_claimable"  # not before its time
    make_due(settings, mail_id)
    assert send_monthly_report(mail_id) == "sent"
    assert send_monthly_report(mail_id) == "not_claimable"
    assert len(smtp.messages) == 1 and ids


def test_smtp_down_is_retried_and_the_password_never_recorded(settings, gh, smtp, monkeypatch):
    running = os.environ["SMTP_URL"]
    closed = port_for.select_random()
    monkeypatch.setenv("SMTP_URL", f"smtp://reports:s3cret@127.0.0.1:{closed}?timeout=3")
    build_monthly_report("acme", MONTH)
    mail_id = next(s.id for s in sends(settings) if s.channel == "email")
    assert send_monthly_report(mail_id) == "retry"
    row = next(s for s in sends(settings) if s.id == mail_id)
    assert row.status == "pending" and "s3cret" not in row.error
    monkeypatch.setenv("SMTP_URL", running)  # the server is back
    make_due(settings, mail_id)
    assert send_monthly_report(mail_id) == "sent" and len(smtp.messages) == 1


def test_github_5xx_after_storing_the_issue_finds_it_instead_of_posting_again(settings, gh, smtp):
    is_create = lambda r: r.method == "POST" and r.path.endswith("/issues")  # noqa: E731
    gh.faults.append((is_create, lambda r: reply({"message": "Bad gateway"}, 502), True))
    build_monthly_report("acme", MONTH)
    issue_id = next(s.id for s in sends(settings) if s.channel == "github")
    assert send_monthly_report(issue_id) == "retry"
    assert len(gh.created) == 1  # GitHub stored it; we could not know
    make_due(settings, issue_id)
    assert send_monthly_report(issue_id) == "sent"
    assert len(gh.created) == 1
    row = next(s for s in sends(settings) if s.id == issue_id)
    assert row.external_id == "1" and row.attempts == 2


def test_github_rate_limit_waits_without_spending_an_attempt(settings, gh, smtp):
    reset = int((datetime.now(UTC) + timedelta(minutes=7)).timestamp())
    limited = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)}
    gh.faults.append(
        (lambda r: r.path == "/user", lambda r: reply({"message": "rate"}, 403, limited), False)
    )
    build_monthly_report("acme", MONTH)
    issue_id = next(s.id for s in sends(settings) if s.channel == "github")
    assert send_monthly_report(issue_id) == "rate_limited"
    row = next(s for s in sends(settings) if s.id == issue_id)
    assert row.status == "pending" and row.attempts == 0
    assert int(row.not_before.timestamp()) == reset
    assert gh.created == []


def test_github_403_is_a_verdict(settings, gh, smtp):
    gh.faults.append(
        (lambda r: r.method == "POST", lambda r: reply({"message": "no access"}, 403), False)
    )
    build_monthly_report("acme", MONTH)
    issue_id = next(s.id for s in sends(settings) if s.channel == "github")
    assert send_monthly_report(issue_id) == "failed"
    row = next(s for s in sends(settings) if s.id == issue_id)
    assert row.status == "failed" and "403" in row.error


def test_retries_stop_after_max_attempts(settings, gh, smtp):
    smtp.refuse = report_jobs.MAX_ATTEMPTS
    build_monthly_report("acme", MONTH)
    mail_id = next(s.id for s in sends(settings) if s.channel == "email")
    outcomes = []
    for _ in range(report_jobs.MAX_ATTEMPTS):
        outcomes.append(send_monthly_report(mail_id))
        make_due(settings, mail_id)
    assert outcomes == ["retry"] * (report_jobs.MAX_ATTEMPTS - 1) + ["failed"]
    assert smtp.messages == []


def test_a_deliberate_resend_is_a_new_delivery(settings, gh, smtp):
    for sid in build_monthly_report("acme", MONTH):
        send_monthly_report(sid)
    again = resend("acme", MONTH)
    assert len(again) == 2
    assert [send_monthly_report(sid) for sid in again] == ["sent", "sent"]
    assert len(gh.created) == 2 and len(smtp.messages) == 2
    assert "<!-- trackrecord:report:acme:2026-10:1 -->" in gh.created[1]["body"]
    ids = [m["Message-ID"] for m in smtp.messages]
    assert ids[1] == f"<trackrecord-report.acme.{MONTH}.resend1@trackrecord.example>" != ids[0]
    # The scheduled delivery is still done: building again sends nothing.
    assert build_monthly_report("acme", MONTH) == []
    assert {(s.channel, s.resend, s.status) for s in sends(settings)} == {
        ("github", 0, "sent"), ("email", 0, "sent"), ("github", 1, "sent"), ("email", 1, "sent")
    }  # fmt: skip
