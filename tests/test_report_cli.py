"""`trackrecord report` through click's CliRunner, against the report fixture's ledger on both
databases: the formats to stdout and to a file, the default month, and one plain line for each
expected failure."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from click.testing import CliRunner

from cli.main import main
from reports.content import last_month
from tests import report_fixture as fx


def _run(*args):
    return CliRunner().invoke(main, ["report", *args], catch_exceptions=False)


def test_report_formats_to_stdout_and_file(env, database_url, tmp_path):
    fx.build(database_url)
    found = _run("acme", "--month", fx.MONTH, "--format", "json")
    assert found.exit_code == 0, found.output
    report = json.loads(found.stdout)
    assert (report["client"], report["month"]) == ("acme", fx.MONTH)
    assert report["record"]["commitments_due"] > 0
    md = _run("acme", "--month", fx.MONTH, "--format", "md")
    assert md.exit_code == 0 and md.stdout.startswith("## Track record of acme: June 2024")
    out = tmp_path / "june.pdf"
    made = _run("acme", "--month", fx.MONTH, "--format", "pdf", "--out", str(out))
    assert made.exit_code == 0, made.output
    assert out.read_bytes().startswith(b"%PDF") and str(out) in made.stderr
    # Without --month: last month in the client's timezone (nothing of 2024 in it).
    default = _run("acme", "--format", "json")
    assert default.exit_code == 0, default.output
    assert json.loads(default.stdout)["month"] == last_month(datetime.now(UTC), "Europe/Berlin")


def test_expected_failures_are_one_plain_line(env, database_url):
    for args, said in [
        (("nobody", "--month", fx.MONTH), "no client 'nobody' in the configuration"),
        (("acme", "--month", "2024-6"), "is not a month like 2026-05"),
        (("acme", "--month", "2999-01"), "is not over yet"),
    ]:
        result = _run(*args)
        assert result.exit_code != 0
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and said in lines[0], result.stderr
        assert result.stdout == ""
