"""`trackrecord record`: the API's record on the command line, as a table or as JSON."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cli.main import main
from tests.ledger_fixture import insert_ledger


@pytest.fixture
def run(env):
    insert_ledger(env["DATABASE_URL"])
    runner = CliRunner()
    return lambda *args: runner.invoke(main, ["record", *args])


def test_json_is_the_api_record(run):
    result = run("platform", "--from", "2024-06-01", "--to", "2024-06-30", "--json")
    assert result.exit_code == 0, result.output
    rec = json.loads(result.output)
    assert (rec["team"], rec["from"], rec["as_of"]) == (
        "platform",
        "2024-06-01",
        "2024-07-01T00:00:00+00:00",
    )
    # Longest streak H1, H2: C2, delivered late, is broken at its deadline, before C1 was kept.
    assert (rec["commitments_due"], rec["missed"], rec["streak_longest"]) == (9, 3, 2)
    assert (rec["summary"], rec["next_due"]) == ("33% on time · 3 of 9 kept", None)


def test_table_by_default(run):
    result = run("platform", "--from", "2024-06-01", "--to", "2024-06-30")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("Track record of platform, 2024-06-01 to 2024-06-30")
    assert lines[1].strip() == "33% on time · 3 of 9 kept"  # the API's `summary`
    assert any(line.split() == ["commitments", "due", "9"] for line in lines)
    assert any(line.split() == ["on-time", "rate", "33%"] for line in lines)
    assert any(line.split()[:2] == ["slip,", "median"] and line.endswith("4.5") for line in lines)
    assert any(line.split() == ["2024-06", "9", "3", "2", "4", "33%"] for line in lines)
    assert any(line.split() == ["2024-01", "0", "0", "0", "0", "-"] for line in lines)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nobody", "--from", "2024-06-01", "--to", "2024-06-30"], "no team 'nobody'"),
        (["platform", "--from", "2024-06-31", "--to", "2024-07-01"], "not a date"),
        (["platform", "--from", "2024-07-01", "--to", "2024-06-30"], "--from is after --to"),
        (["platform", "--to", "2024-06-30"], "Missing option '--from'"),
        (["platform", "--from", "2024-06-01", "--to", "9999-12-31"], "out of range"),
    ],
)
def test_bad_arguments(run, args, message):
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.output
