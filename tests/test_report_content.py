"""Monthly client reports (issue 10): the content of a report built from a fixed ledger with every
outcome (tests/report_fixture.py), on SQLite and PostgreSQL, held to the row-by-row reference
figures (tests/reference_figures.py) and to the fixture's own rows; then its HTML, Markdown, PDF
and JSON forms."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine

from reports.charts import NAMESPACES, self_contained, sparkline_svg, trend_svg
from reports.content import build_report, last_month
from reports.render import CONTENT_TYPES, FORMATS, render
from tests import report_fixture as fx
from tests.reference_figures import reference_record
from trackrecord.config import load_config

JUNE = (date(2024, 6, 1), date(2024, 6, 30))
MAY = (date(2024, 5, 1), date(2024, 5, 31))
BERLIN = ZoneInfo("Europe/Berlin")
FIGURES = (
    "commitments_due", "pending", "delivered_early", "delivered_on_time", "delivered_late",
    "missed", "dropped", "descoped", "excluded", "on_time_rate", "say_do_ratio",
    "slip_days_median", "slip_days_p90", "streak_current", "streak_longest", "small_wins",
    "unpromised_deliveries", "first_win_days",
)  # fmt: skip


@pytest.fixture
def config(config_path):
    return load_config(config_path)


@pytest.fixture
def engine(database_url):
    fx.build(database_url)
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def report(engine, config) -> dict:
    with engine.connect() as conn:
        built = build_report(conn, config, "acme", fx.MONTH, now=fx.NOW)
    # What every consumer gets: the JSON form, parsed back.
    return json.loads(render(built, "json"))


def _reference(engine, period, *, teams, client=None, tz=UTC):
    as_of = min(fx.NOW, datetime.combine(period[1], datetime.min.time(), tz) + _DAY)
    with engine.connect() as conn:
        return reference_record(
            conn,
            as_of=as_of,
            period_from=period[0],
            period_to=period[1],
            teams=teams,
            client=client,
            tz=tz,
        )


_DAY = datetime(2024, 1, 2) - datetime(2024, 1, 1)


def _same(found: dict, expected: dict) -> None:
    for field in FIGURES:
        assert found[field] == pytest.approx(expected[field]), field
    for end in ("estimate", "low", "high"):
        assert found["trust_score"][end] == pytest.approx(expected["trust_score"][end], abs=1e-9)


def test_the_figures_are_the_reference_figures(engine, report):
    assert (report["client"], report["month"], report["timezone"]) == (
        "acme",
        "2024-06",
        BERLIN.key,
    )
    assert report["generated_at"] == fx.NOW.isoformat()
    client = _reference(engine, JUNE, teams=["platform", "web"], client="acme", tz=BERLIN)
    _same(report["record"], client)
    _same(
        report["previous"],
        _reference(engine, MAY, teams=["platform", "web"], client="acme", tz=BERLIN),
    )
    assert report["previous"]["month"] == "2024-05"
    teams = {t["team"]: t for t in report["teams"]}
    assert list(teams) == ["platform", "web"]
    _same(teams["platform"], _reference(engine, JUNE, teams=["platform"]))
    _same(teams["web"], _reference(engine, JUNE, teams=["web"], tz=BERLIN))
    # The trend: twelve months ending with June, each month's volume and rate as the record's.
    assert [p["month"] for p in report["trend"]][-1] == "2024-06"
    assert len(report["trend"]) == 12
    for point, month in zip(report["trend"], client["months"], strict=True):
        assert point["commitments_due"] == month["commitments_due"]
        assert point["on_time_rate"] == month["on_time_rate"]
    due = report["record"]["commitments_due"]
    kept = report["record"]["delivered_early"] + report["record"]["delivered_on_time"]
    assert report["headline"].startswith(f"{kept} of {due} promises kept on time")
    assert "down from 100%" in report["headline"]  # May: H2 kept, 1 of 1


def test_every_item_is_told_with_what_happened(report):
    expected = fx.expected_outcomes(*JUNE, deadline_passed_by=fx.NOW)
    not_well = {i["title"]: i["outcome"] for i in report["did_not_go_well"]}
    assert not_well == {
        t: o for t, o in expected.items() if o in ("late", "missed", "dropped", "descoped")
    }
    kept = {i["title"] for i in report["went_well"]["kept"]}
    assert kept == {t for t, o in expected.items() if o in ("early", "on_time")}
    rec = report["record"]
    # Each list names exactly the items its figure counts.
    assert len(report["did_not_go_well"]) == sum(
        rec[f] for f in ("delivered_late", "missed", "dropped", "descoped")
    )
    assert len(report["went_well"]["small_wins"]) == rec["small_wins"] > 0
    assert len(report["went_well"]["unpromised"]) == rec["unpromised_deliveries"] > 0
    assert {i["title"] for i in report["went_well"]["unpromised"]} == {"U1", "U2"}
    said = {i["title"]: i["what_happened"] for i in report["did_not_go_well"]}
    key, first, latest = fx.REPROMISED
    assert f"re-promised from {first.day} Jun to {latest.day} Jun" in said[key]
    assert "reopened once" in said["C2"]
    assert said["C2"].startswith("Delivered 3 days late")
    assert said[fx.HOSTILE_TITLE].startswith("Dropped")
    assert said["C11"].startswith("Missed")  # pending in the ledger, overdue: read as missed
    [excluded] = report["excluded"]
    assert excluded["title"] == "C10"
    assert f"excluded from the figures: {fx.REASON} (by dana)" in excluded["what_happened"]
    assert report["next_month"]["month"] == "2024-07"
    assert [i["title"] for i in report["next_month"]["promises"]] == ["C12"]
    assert set(report["definitions"]) >= {"on_time_rate", "say_do_ratio", "trust_score"}


def test_bad_client_and_month_are_refused_in_plain_words(engine, config):
    with engine.connect() as conn:
        for client, month, said in [
            ("nobody", "2024-06", "no client 'nobody'"),
            ("acme", "2024-6", "not a month like"),
            ("acme", "2024-13", "not a month like"),
            ("acme", "June", "not a month like"),
            ("acme", "2024-07", "not over yet"),
        ]:
            with pytest.raises(ValueError, match=said):
                build_report(conn, config, client, month, now=fx.NOW)
        # The month is over at midnight in the client's timezone (Berlin, UTC+2 in summer).
        build_report(conn, config, "acme", "2024-06", now=datetime(2024, 6, 30, 22, tzinfo=UTC))
        with pytest.raises(ValueError, match="not over yet"):
            build_report(conn, config, "acme", "2024-06", now=datetime(2024, 6, 30, 21, tzinfo=UTC))


def test_last_month_is_read_in_the_clients_timezone():
    assert last_month(datetime(2024, 6, 30, 23, tzinfo=UTC), "Europe/Berlin") == "2024-06"
    assert last_month(datetime(2024, 6, 30, 23, tzinfo=UTC), "UTC") == "2024-05"
    assert last_month(datetime(2024, 1, 15, tzinfo=UTC), "UTC") == "2023-12"


# --- the formats -------------------------------------------------------------------------------

_URL = re.compile(r"https?://[^\s\"'<>)]+")


def _cells(html: str, first_cell: str) -> list[str]:
    """The text of the cells of the HTML table row whose first cell starts with `first_cell`."""
    for row in re.findall(r"<tr>(.*?)</tr>", html, flags=re.S):
        cells = [
            re.sub(r"<[^>]+>", " ", c).split()
            for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        ]
        if cells and " ".join(cells[0]).startswith(first_cell):
            return [" ".join(c) for c in cells]
    raise AssertionError(f"no row {first_cell!r}")


def test_html_is_self_contained_and_holds_the_tables(report):
    html = render(report, "html").decode()
    assert "<script" not in html.lower() and "<link" not in html.lower()
    assert "@import" not in html and "url(" not in html
    assert set(_URL.findall(html)) <= set(NAMESPACES)
    assert html.count("<svg") == 1 + len(report["teams"])  # the trend, one sparkline per team
    assert "<title>Promises due per month" in html and "<desc>" in html
    for team in report["teams"]:
        cells = _cells(html, team["team"])
        kept = team["delivered_early"] + team["delivered_on_time"]
        assert cells[1:6] == [
            str(team["commitments_due"]), str(kept), str(team["delivered_late"]),
            str(team["missed"]), str(team["dropped"]),
        ]  # fmt: skip
    rec = report["record"]
    assert _cells(html, "June 2024")[1:3] == [
        str(rec["commitments_due"]),
        str(rec["delivered_early"]),
    ]
    # Item text is escaped, never markup.
    assert "<b>old</b>" not in html and "&lt;b&gt;old&lt;/b&gt;" in html
    assert _cells(html, "C3")[3] == "missed"
    assert fx.REASON in html


def test_markdown_reads_as_a_github_issue(report):
    md = render(report, "md").decode()
    assert md.startswith("## Track record of acme: June 2024")
    assert report["headline"] in md
    rows = {line.split("|")[1].strip(): line for line in md.splitlines() if line.startswith("| ")}
    for team in report["teams"]:
        cells = [c.strip() for c in rows[team["team"]].strip("|").split("|")]
        assert cells[1] == str(team["commitments_due"]) and cells[3] == str(team["delivered_late"])
    # A title cannot break the table, ping anyone or inject HTML.
    hostile = next(line for line in md.splitlines() if "ping" in line)
    assert "\\@ghost" in hostile and "\\|" in hostile and "\\<b\\>" in hostile
    assert hostile.count(" | ") == 4  # five cells, as the header says
    assert "<script" not in md and not _URL.findall(md)


def test_pdf_text_states_the_figures(report, tmp_path):
    pdf = render(report, "pdf")
    assert pdf.startswith(b"%PDF")
    path = tmp_path / "r.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True, text=True
    ).stdout
    flat = " ".join(text.split())
    assert "Track record of acme: June 2024" in flat
    assert " ".join(report["headline"].split()) in flat
    for item in report["did_not_go_well"]:
        assert item["title"].split()[0] in flat
    assert fx.REASON in flat and "What did not go well" in flat and "Promised for July 2024" in flat


def test_every_format_has_a_content_type(report):
    assert set(CONTENT_TYPES) == set(FORMATS)
    with pytest.raises(ValueError, match="format 'docx'"):
        render(report, "docx")


def test_charts_are_self_contained_and_described():
    months = [
        {
            "month": f"2024-{m:02d}",
            "kept": m % 3,
            "broken": 1,
            "on_time_rate": (m % 3) / (m % 3 + 1),
        }
        for m in range(1, 13)
    ]
    svg = trend_svg(months, title="Twelve months")
    assert self_contained(svg) and "<script" not in svg and "<!--" not in svg
    assert re.search(r"<svg[^>]*>\s*<title>Twelve months</title><desc>", svg)
    assert "Nov 24: 3 due, 2 kept on time (67%)" in svg  # November: 11 % 3 = 2 kept, 1 broken
    spark = sparkline_svg([0.5, None, 1.0], title="web")
    assert self_contained(spark) and "<desc>web: 50%, -, 100%</desc>" in spark
    assert not self_contained('<svg><image href="https://example.com/x.png"/></svg>')
