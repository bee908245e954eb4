"""A report dict (`reports.content.build_report`) as HTML, PDF, Markdown or JSON bytes.

HTML is one self-contained document (inline CSS, inline SVG charts, no script, stylesheet, font
or image fetched from anywhere), so it reads the same in a browser, an email and a PDF. The PDF
is that HTML laid out by WeasyPrint. Markdown is written for a GitHub issue (tables, and the
definitions folded in a <details>). JSON is the dict itself.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from ledger.record import day_words
from reports.charts import sparkline_svg, trend_svg
from reports.words import count_words, kept_sentence, pct

FORMATS = ("html", "pdf", "md", "json")
CONTENT_TYPES = {
    "html": "text/html; charset=utf-8",
    "pdf": "application/pdf",
    "md": "text/markdown; charset=utf-8",
    "json": "application/json",
}
# GitHub reads these in issue text as markup, mentions (@someone pings them) or references.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|~@])")


def render(report: dict, fmt: str) -> bytes:
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    if fmt == "json":
        return json.dumps(report, indent=2, ensure_ascii=False).encode()
    if fmt == "md":
        return _env(autoescape=False).get_template("report.md.j2").render(_context(report)).encode()
    html = _env(autoescape=True).get_template("report.html.j2").render(_context(report, svg=True))
    if fmt == "html":
        return html.encode()
    return _pdf(html)


def _pdf(html: str) -> bytes:
    # Imported here: WeasyPrint loads Pango when imported, which only the PDF needs.
    from weasyprint import HTML

    # No base_url and a fetcher that refuses everything: the document must not load anything.
    return HTML(string=html, url_fetcher=_refuse).write_pdf()


def _refuse(url: str, *args, **kwargs):
    raise ValueError(f"a report loads nothing from outside itself ({url[:80]})")


def _context(report: dict, *, svg: bool = False) -> dict:
    last = date.fromisoformat(report["to"])
    tz = ZoneInfo(report["timezone"])
    rec = report["record"]
    ctx = {
        "r": report,
        "rec": rec,
        "month_name": f"{last:%B %Y}",
        "previous_name": f"{date.fromisoformat(report['previous']['from']):%B %Y}",
        "next_month_name": f"{date.fromisoformat(report['next_month']['month'] + '-01'):%B %Y}",
        "generated": day_words(
            datetime.fromisoformat(report["generated_at"]).astimezone(tz).date(), date.min
        ),
        "kept_sentence": kept_sentence,
        "count_words": count_words,
    }
    if svg:
        ctx["trend_svg"] = Markup(
            trend_svg(report["trend"], title="Promises due per month, and the share kept on time")
        )
        ctx["sparklines"] = {
            t["team"]: Markup(
                sparkline_svg(
                    [m["on_time_rate"] for m in t["months"]],
                    title=f"{t['team']}: on-time rate per month, last 12 months",
                )
            )
            for t in report["teams"]
        }
    return ctx


def _env(*, autoescape: bool) -> Environment:
    env = Environment(
        loader=PackageLoader("reports", "templates"),
        autoescape=autoescape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        pct=pct,
        num=lambda v, fmt="{:.1f}": "-" if v is None else fmt.format(v),
        day=_day,
        md=_md,
        outcome=lambda o: o.replace("_", " "),
        # 'github:acme/app#12' -> 'acme/app#12', 'jira:PLAT-7' -> 'PLAT-7': as people write them.
        short=lambda key: key.split(":", 1)[-1],
    )
    return env


def _day(value: str | None, year_of: str | None = None) -> str:
    """An ISO date or instant as '5 Jun' (with the year when it is not `year_of`'s)."""
    if not value:
        return "-"
    day = date.fromisoformat(value[:10])
    return day_words(day, date.fromisoformat(year_of[:10]) if year_of else day)


def _md(text) -> str:
    """Item text made inert in Markdown: one line, markup and mentions escaped."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(text or "").split()))
