"""When monthly reports go out (issue 10): due on the 1st at the client's hour in its timezone;
the scheduler's job, run every 15 minutes through a real RQ worker, builds and sends a month
once however often it runs, and a run missed while the service was down is made up once."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from cli.main import main as cli
from tests import ledger_helpers as h
from tests.test_report_delivery import (  # noqa: F401  (fixtures)
    config_path,
    files,
    gh,
    make_due,
    sends,
    smtp,
)
from workers.report_schedule import due, finished, schedule_reports


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "hour", "tz", "month"),
    [
        ("2026-03-01T06:59", 8, "Europe/Berlin", "2026-01"),  # 07:59 in Berlin: not yet
        ("2026-03-01T07:00", 8, "Europe/Berlin", "2026-02"),  # 08:00 in Berlin
        ("2026-03-20T12:00", 8, "Europe/Berlin", "2026-02"),
        ("2026-01-01T07:00", 8, "Europe/Berlin", "2025-12"),  # across the year
        ("2026-01-01T06:00", 8, "Europe/Berlin", "2025-11"),
        ("2026-03-01T00:30", 0, "America/New_York", "2026-01"),  # still Feb 28 in New York
        ("2026-03-01T05:00", 0, "America/New_York", "2026-02"),
    ],
)
def test_the_due_month(now, hour, tz, month):
    assert due(hour, tz, utc(now))[0] == month
    assert finished(month, tz, utc(now))


def test_a_month_not_over_in_the_clients_timezone_is_not_finished():
    assert not finished("2026-02", "America/New_York", utc("2026-03-01T04:59"))
    assert finished("2026-02", "America/New_York", utc("2026-03-01T05:00"))


def run(settings, redis_conn, now: str) -> dict:
    """One scheduler tick at `now` (UTC), then a worker drains the queue."""
    done = schedule_reports(utc(now))
    h.run_worker(settings, redis_conn)
    return done


def test_each_month_runs_once(settings, redis_conn, gh, smtp):  # noqa: F811
    run(settings, redis_conn, "2026-02-27T12:00")  # January was due on 1 February
    assert {(s.month, s.channel, s.status) for s in sends(settings)} == {
        ("2026-01", "github", "sent"), ("2026-01", "email", "sent")
    }  # fmt: skip
    built = files(settings)
    # Every 15 minutes up to the hour: nothing more, nothing rebuilt.
    for now in ("2026-02-27T12:15", "2026-03-01T06:45", "2026-03-01T06:59"):
        assert run(settings, redis_conn, now) == {"builds": [], "sends": []}
    assert files(settings) == built and len(gh.created) == 1 and len(smtp.messages) == 1
    # 08:00 in Berlin: acme's February, once. globex (UTC, no channel) at 08:00 UTC: its
    # report is built and stored, and sent nowhere.
    assert run(settings, redis_conn, "2026-03-01T07:00")["builds"] == [("acme", "2026-02")]
    for now in ("2026-03-01T07:15", "2026-03-01T07:30"):
        assert run(settings, redis_conn, now) == {"builds": [], "sends": []}
    assert run(settings, redis_conn, "2026-03-01T08:00")["builds"] == [("globex", "2026-02")]
    for now in ("2026-03-01T08:15", "2026-03-15T07:00"):
        assert run(settings, redis_conn, now) == {"builds": [], "sends": []}
    assert [i["title"] for i in gh.created] == [
        "Track record for 2026-01: acme", "Track record for 2026-02: acme"
    ]  # fmt: skip
    assert [m["Message-ID"] for m in smtp.messages] == [
        "<trackrecord-report.acme.2026-01@trackrecord.example>",
        "<trackrecord-report.acme.2026-02@trackrecord.example>",
    ]
    assert {k for k in files(settings) if k[1] == "2026-02"} == {
        (c, "2026-02", f) for c in ("acme", "globex") for f in ("html", "pdf", "md", "json")
    }


def test_downtime_across_the_first_is_caught_up_once(settings, redis_conn, gh, smtp):  # noqa: F811
    run(settings, redis_conn, "2026-02-27T12:00")
    # Down from 27 February to 4 March; two schedulers come back at once.
    first = schedule_reports(utc("2026-03-04T09:00"))
    second = schedule_reports(utc("2026-03-04T09:00"))
    assert ("acme", "2026-02") in first["builds"] and ("acme", "2026-02") in second["builds"]
    h.run_worker(settings, redis_conn)
    assert run(settings, redis_conn, "2026-03-04T09:15") == {"builds": [], "sends": []}
    months = [(s.month, s.channel) for s in sends(settings) if s.status == "sent"]
    assert sorted(months) == [
        ("2026-01", "email"), ("2026-01", "github"), ("2026-02", "email"), ("2026-02", "github")
    ]  # fmt: skip
    assert len(gh.created) == 2 and len(smtp.messages) == 2


def test_a_failed_send_is_retried_by_the_scheduler(settings, redis_conn, gh, smtp):  # noqa: F811
    smtp.refuse = 1
    run(settings, redis_conn, "2026-02-27T12:00")
    mail = next(s for s in sends(settings) if s.channel == "email")
    assert mail.status == "pending" and smtp.messages == []
    assert mail.not_before is not None
    # Its retry job (RQ's scheduled registry) is lost: the next tick after its retry time
    # puts it back on the queue, and it goes out once.
    redis_conn.flushdb()
    make_due(settings, mail.id)
    assert run(settings, redis_conn, "2026-02-27T12:15") == {"builds": [], "sends": [mail.id]}
    assert run(settings, redis_conn, "2026-02-27T12:30") == {"builds": [], "sends": []}
    assert len(smtp.messages) == 1 and len(gh.created) == 1


def test_reports_lists_what_was_built_and_sent(settings, redis_conn, gh, smtp):  # noqa: F811
    smtp.refuse = 1
    run(settings, redis_conn, "2026-02-27T12:00")
    out = CliRunner().invoke(cli, ["reports"])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert "acme  2026-01  html, json, md, pdf  built" in lines[0] or any(
        line.startswith("acme  2026-01  html, json, md, pdf  built") for line in lines
    )
    github = next(line for line in lines if line.strip().startswith("github"))
    mail = next(line for line in lines if line.strip().startswith("email"))
    assert "sent" in github and "-> acme-corp/reports" in github and github.endswith("  1")
    assert "pending" in mail and "451" in mail
    only = CliRunner().invoke(cli, ["reports", "--client", "globex", "--json"])
    assert only.exit_code == 0
    import json

    doc = json.loads(only.output)
    assert [(d["client"], d["month"], d["sends"]) for d in doc] == [("globex", "2026-01", [])]
    bad = CliRunner().invoke(cli, ["reports", "--client", "nobody"])
    assert bad.exit_code != 0 and "no client 'nobody'" in bad.output


def test_report_send_resends_on_purpose(settings, redis_conn, gh, smtp):  # noqa: F811
    run(settings, redis_conn, "2026-02-27T12:00")
    out = CliRunner().invoke(cli, ["report", "acme", "--month", "2026-01", "--send"])
    assert out.exit_code == 0, out.output
    assert "github (re-send 1)" in out.output and "email (re-send 1)" in out.output
    assert len(gh.created) == 2 and len(smtp.messages) == 2
    # The scheduled delivery stays done: the next tick sends nothing.
    assert run(settings, redis_conn, "2026-02-27T12:15") == {"builds": [], "sends": []}
    smtp.refuse = 1
    again = CliRunner().invoke(cli, ["report", "acme", "--month", "2026-01", "--send"])
    assert again.exit_code == 1 and "451" in again.output
    assert len(gh.created) == 3 and len(smtp.messages) == 2
    none = CliRunner().invoke(cli, ["report", "globex", "--month", "2026-01", "--send"])
    assert none.exit_code == 1 and "no report channel" in none.output


@pytest.mark.parametrize(
    ("table", "complaint"),
    [
        ("hour = 24", "report.hour"),
        ('email_to = ["cto@acme.example"]', "email_from"),
        ('email_to = ["not an address"]', "not an email address"),
        ('github_issue_repo = "no-slash"', "owner/name"),
        ("weekday = 1", "weekday"),
    ],
)
def test_the_report_table_is_validated(tmp_path, table, complaint):
    from trackrecord.config import ConfigError, load_config

    path = tmp_path / "c.toml"
    path.write_text(f'[[clients]]\nname = "acme"\n\n[clients.report]\n{table}\n')
    with pytest.raises(ConfigError, match=complaint):
        load_config(str(path))
