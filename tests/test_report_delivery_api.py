"""Monthly reports on the web (issue 10): a client's token reads its own reports and nobody
else's (404, not 403), the admin token reads all; a finished month is built and stored on its
first request and served as stored; the PDF comes with its content type and a file name."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from ledger.report_rows import ReportFile
from tests.helpers import CLIENT_TOKEN
from tests.test_report_delivery import config_path, files, gh, sends, smtp  # noqa: F401
from trackrecord.db import session_factory
from workers.report_jobs import build_monthly_report, send_monthly_report

ADMIN, GLOBEX = "admin-token-for-tests", "globex-token-for-tests"
MONTH = "2026-10"


@pytest.fixture
def tokens(env, monkeypatch):
    monkeypatch.setenv("TRACKRECORD_ADMIN_TOKEN", ADMIN)
    monkeypatch.setenv("GLOBEX_API_TOKEN", GLOBEX)


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def stored_count(settings) -> int:
    with session_factory(settings.database_url)() as s:
        return s.scalar(select(func.count()).select_from(ReportFile))


def test_a_report_is_built_on_first_request_and_served_as_stored(client, settings, tokens):
    assert stored_count(settings) == 0
    first = client.get(f"/reports/acme/{MONTH}.json", headers=auth(CLIENT_TOKEN))
    assert first.status_code == 200, first.json
    assert first.content_type == "application/json"
    assert json.loads(first.data)["client"] == "acme"
    assert {(c, m, f) for c, m, f in files(settings)} == {("acme", MONTH, "json")}
    again = client.get(f"/reports/acme/{MONTH}.json", headers=auth(CLIENT_TOKEN))
    assert again.data == first.data and stored_count(settings) == 1
    md = client.get(f"/reports/acme/{MONTH}.md", headers=auth(CLIENT_TOKEN))
    assert md.status_code == 200 and md.content_type == "text/markdown; charset=utf-8"
    html = client.get(f"/reports/acme/{MONTH}.html", headers=auth(ADMIN))
    assert html.status_code == 200 and html.content_type == "text/html; charset=utf-8"
    assert b"<html" in html.data.lower()


def test_the_pdf(client, tokens):
    pdf = client.get(f"/reports/acme/{MONTH}.pdf", headers=auth(CLIENT_TOKEN))
    assert pdf.status_code == 200 and pdf.content_type == "application/pdf"
    assert pdf.data.startswith(b"%PDF")
    assert pdf.headers["Content-Disposition"] == (
        f'attachment; filename="track-record-acme-{MONTH}.pdf"'
    )


@pytest.mark.parametrize(
    "name",
    ["2026-10.docx", "2026-10.PDF", "2026-13.json", "26-10.json", "2026-10", "2099-01.json",
     "9999-01.json"],
)  # fmt: skip
def test_not_a_finished_month_or_not_a_format_is_404(client, settings, tokens, name):
    got = client.get(f"/reports/acme/{name}", headers=auth(CLIENT_TOKEN))
    assert got.status_code == 404 and got.json["error"] == "not_found"
    assert stored_count(settings) == 0


def test_only_recent_months_are_built_on_request_but_stored_old_ones_are_served(
    client, settings, tokens
):
    # Any token holder could otherwise have a report stored for every month back to 1900.
    old = client.get("/reports/acme/1999-01.pdf", headers=auth(CLIENT_TOKEN))
    assert old.status_code == 404 and "trackrecord report" in old.json["message"]
    assert stored_count(settings) == 0
    from ledger import report_rows

    with session_factory(settings.database_url)() as s, s.begin():
        report_rows.store(s, "acme", "1999-01", "md", b"# built by the CLI\n")
    served = client.get("/reports/acme/1999-01.md", headers=auth(CLIENT_TOKEN))
    assert served.status_code == 200 and served.data == b"# built by the CLI\n"


def test_the_month_in_progress_is_404(client, settings, tokens):
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    got = client.get(f"/reports/acme/{now:%Y-%m}.json", headers=auth(CLIENT_TOKEN))
    assert got.status_code == 404 and stored_count(settings) == 0


def test_a_client_never_reads_another_clients_report(client, settings, tokens):
    for path in (f"/reports/acme/{MONTH}.pdf", "/api/v1/clients/acme/reports"):
        other = client.get(path, headers=auth(GLOBEX))
        unknown = client.get(path.replace("acme", "nobody"), headers=auth(GLOBEX))
        assert other.status_code == unknown.status_code == 404
        assert other.json["error"] == unknown.json["error"] == "not_found"
        assert client.get(path).status_code == 401
        assert client.get(path, headers=auth("wrong")).status_code == 401
    assert stored_count(settings) == 0
    assert client.get(f"/reports/globex/{MONTH}.md", headers=auth(GLOBEX)).status_code == 200
    assert client.get(f"/reports/globex/{MONTH}.md", headers=auth(ADMIN)).status_code == 200


def test_the_list_says_what_was_built_and_sent(client, settings, tokens, gh, smtp):  # noqa: F811
    smtp.refuse = 1
    for sid in build_monthly_report("acme", MONTH):
        send_monthly_report(sid)
    got = client.get("/api/v1/clients/acme/reports", headers=auth(CLIENT_TOKEN))
    assert got.status_code == 200
    (entry,) = got.json["reports"]
    assert got.json["client"] == "acme" and entry["month"] == MONTH
    assert sorted(entry["formats"]) == ["html", "json", "md", "pdf"]
    assert entry["formats"]["pdf"]["url"] == f"/reports/acme/{MONTH}.pdf"
    by = {s["channel"]: s for s in entry["sends"]}
    assert by["github"]["status"] == "sent" and by["github"]["external_id"] == "1"
    assert by["email"]["status"] == "pending" and "451" in by["email"]["error"]
    assert by["email"]["attempts"] == 1 and by["github"]["sent_at"].endswith("Z")
    assert len(sends(settings)) == 2
    admin = client.get("/api/v1/clients/acme/reports", headers=auth(ADMIN))
    assert admin.json == got.json
    globex = client.get("/api/v1/clients/globex/reports", headers=auth(ADMIN))
    assert globex.json == {"client": "globex", "reports": []}
