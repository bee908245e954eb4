"""`trackrecord exclude` / `exclusions`: audited, undoable, and `commitments.excluded` follows."""

from __future__ import annotations

from click.testing import CliRunner
from sqlalchemy import select

from cli.main import main
from ledger.tables import Exclusion
from tests import ledger_helpers as h
from trackrecord.db import session_factory

ISSUE = "github:Codertocat/Hello-World#1"


def seed(client, settings, redis_conn) -> None:
    h.post_github(client, *h.gh_issue("opened", "2019-05-15T15:20:18Z"))
    h.post_jira(client, h.jira_created("2019-02-16T03:01:52.000+0000"))
    h.run_worker(settings, redis_conn)


def cli(*args: str):
    return CliRunner().invoke(main, list(args))


def audit(settings) -> list[tuple]:
    with session_factory(settings.database_url)() as s:
        rows = s.scalars(select(Exclusion).order_by(Exclusion.id))
        return [(r.reason, r.excluded_by, r.undone_by, r.undo_reason) for r in rows]


def test_exclude_and_undo_are_audited_and_flip_excluded(client, settings, redis_conn):
    seed(client, settings, redis_conn)
    out = cli(
        "exclude", "Codertocat/Hello-World#1", "--reason", "client held the spec", "--by", "lea"
    )
    assert out.exit_code == 0, out.output
    assert f"excluded: {ISSUE}" in out.output
    assert h.commitments(settings)[ISSUE]["excluded"] is True
    assert h.commitments(settings)["jira:TES-41"]["excluded"] is False

    again = cli("exclude", ISSUE, "--reason", "twice", "--by", "lea")
    assert again.exit_code == 1 and "already excluded" in again.output

    out = cli(
        "exclude", "github:codertocat/hello-world#1", "--undo", "--by", "max", "--reason", "oops"
    )
    assert out.exit_code == 0, out.output
    assert h.commitments(settings)[ISSUE]["excluded"] is False
    # Nothing is deleted: the undo is stamped on the same row.
    assert audit(settings) == [("client held the spec", "lea", "max", "oops")]
    with session_factory(settings.database_url)() as s:
        assert s.scalar(select(Exclusion.undone_at)) is not None

    assert cli("exclude", ISSUE, "--undo", "--by", "max").exit_code == 1  # nothing active


def test_exclusion_survives_a_refold(client, settings, redis_conn):
    seed(client, settings, redis_conn)
    assert cli("exclude", "TES-41", "--reason", "blocked by vendor").exit_code == 0
    h.post_jira(client, h.jira_resolved("2019-02-18T10:00:00.000+0000"))
    h.run_worker(settings, redis_conn)
    row = h.commitments(settings)["jira:TES-41"]
    assert (row["outcome"], row["excluded"]) == ("early", True)


def test_exclusions_lists_active_and_undone(client, settings, redis_conn):
    seed(client, settings, redis_conn)
    cli("exclude", "jira:TES-41", "--reason", "vendor delay", "--by", "lea")
    cli("exclude", ISSUE, "--reason", "client held the spec", "--by", "lea")
    cli("exclude", ISSUE, "--undo", "--by", "max")
    out = cli("exclusions")
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert len(lines) == 2
    assert (
        lines[0].startswith("jira:TES-41") and "active" in lines[0] and "vendor delay" in lines[0]
    )
    assert lines[1].startswith(ISSUE) and "undone by max" in lines[1]
    assert cli("exclusions", "--team", "web").output.strip() == "no exclusions"
    assert len(cli("exclusions", "--team", "platform").output.splitlines()) == 2


def test_unknown_item_or_bad_id_is_a_clear_error(client, settings, redis_conn):
    seed(client, settings, redis_conn)
    out = cli("exclude", "Codertocat/Hello-World#999", "--reason", "x")
    assert out.exit_code == 1
    assert "no item github:Codertocat/Hello-World#999" in out.output
    bad = cli("exclude", "not an id", "--reason", "x")
    assert bad.exit_code == 1 and "is not a source id" in bad.output
    missing_reason = cli("exclude", ISSUE)
    assert missing_reason.exit_code == 2 and "--reason is required" in missing_reason.output
    assert audit(settings) == []


def test_the_ledger_api_shows_why_a_row_is_excluded(client, settings, redis_conn, monkeypatch):
    seed(client, settings, redis_conn)
    cli("exclude", ISSUE, "--reason", "client held the spec", "--by", "lea")
    monkeypatch.setenv("TRACKRECORD_ADMIN_TOKEN", "admin-token")
    answer = client.get(
        "/api/v1/teams/platform/commitments?from=2019-01-01&to=2019-12-31",
        headers={"Authorization": "Bearer admin-token"},
    )
    rows = {r["item"]: r for r in answer.get_json()["commitments"]}
    assert rows[ISSUE]["excluded"] is True
    assert rows[ISSUE]["exclusion"]["reason"] == "client held the spec"
    assert rows[ISSUE]["exclusion"]["by"] == "lea"
    assert rows["jira:TES-41"]["exclusion"] is None
