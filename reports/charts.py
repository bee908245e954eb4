"""The report's charts as SVG text, drawn by pygal: the 12-month trend (volume as bars, on-time
rate as a line on its own axis) and a small sparkline.

The SVG is inlined in HTML pages, PDFs and emails, so it must stand alone: pygal links its
tooltip script from a CDN by default (`js`), which is turned off, and the output is checked to
reference nothing outside itself (`self_contained`). Each chart carries a <title> and a <desc>
that say in words what it shows, for screen readers and for text extraction.
"""

from __future__ import annotations

import re
from datetime import date
from html import escape

import pygal
from pygal.style import Style

# The XML namespaces an SVG declares: names, never fetched.
NAMESPACES = ("http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink")
_URL = re.compile(r"https?://[^\s\"'<>)]+")

KEPT_COLOUR = "#2f7d4f"
BROKEN_COLOUR = "#d9822b"
_STYLE = Style(
    background="white",
    plot_background="white",
    foreground="#333333",
    foreground_strong="#222222",
    foreground_subtle="#e8e8e8",
    colors=(KEPT_COLOUR, BROKEN_COLOUR),
    font_family="DejaVu Sans, Helvetica, Arial, sans-serif",
    title_font_size=16,
    label_font_size=12,
    major_label_font_size=12,
    legend_font_size=12,
    value_font_size=11,
    value_label_font_size=11,
)


def _strip_scripts(root):
    """pygal's xml filter: drop every <script> (with `js=[]` pygal still inlines its tooltip
    configuration as one) and comment (pygal signs its output with its web site's address)."""
    for parent in list(root.iter()):
        for child in list(parent):
            tag = child.tag if isinstance(child.tag, str) else "#comment"
            if tag == "#comment" or tag.rsplit("}", 1)[-1] == "script":
                parent.remove(child)
    return root


# What every chart turns off: the tooltip script link, scripts and comments, the XML
# declaration (the SVG goes inside an HTML document).
_STANDALONE = {
    "js": [],
    "disable_xml_declaration": True,
    "pretty_print": False,
}


def trend_svg(months: list[dict], *, title: str) -> str:
    """One stacked bar per month: promises kept on time and promises broken (late, missed or
    dropped), so the bar's height is the month's volume, labelled with its on-time rate.

    `months` are the report's trend points (`month`, `kept`, `broken`, `on_time_rate`) or the
    record's `months` (the API's counts), oldest first.
    """
    labels = [_month_label(m["month"]) for m in months]
    kept = [_kept(m) for m in months]
    broken = [_broken(m) for m in months]
    rates = [m["on_time_rate"] for m in months]
    chart = pygal.StackedBar(
        style=_STYLE,
        title=title,
        width=760,
        height=280,
        x_labels=labels,
        legend_at_bottom=True,
        legend_at_bottom_columns=2,
        print_labels=True,
        print_values=False,
        show_minor_y_labels=False,
        min_scale=2,
        max_scale=6,
        margin=8,
        truncate_legend=-1,
        **_STANDALONE,
    )
    chart.value_formatter = lambda v: f"{v:g}"
    chart.add("Kept on time", kept)
    # The rate is printed on the top of each month's bar: the broken part, even when empty.
    chart.add(
        "Late, missed or dropped (label: % kept on time)",
        [
            {"value": n, "label": "" if r is None else f"{r:.0%}"}
            for n, r in zip(broken, rates, strict=True)
        ],
    )
    described = "; ".join(
        f"{label}: {k + b} due, {k} kept on time" + ("" if r is None else f" ({r:.0%})")
        for label, k, b, r in zip(labels, kept, broken, rates, strict=True)
    )
    return _described(chart, title, f"Promises due and kept on time per month. {described}.")


def _kept(m: dict) -> int:
    return m["kept"] if "kept" in m else m["delivered_early"] + m["delivered_on_time"]


def _broken(m: dict) -> int:
    if "broken" in m:
        return m["broken"]
    return m["delivered_late"] + m["missed"] + m["dropped"]


def sparkline_svg(values: list[float | None], *, title: str) -> str:
    """A small line of `values` (rates 0-1, None for a month with nothing due), no axes."""
    chart = pygal.Line(
        style=_STYLE,
        width=120,
        height=28,
        show_legend=False,
        show_x_labels=False,
        show_y_labels=False,
        show_y_guides=False,
        show_x_guides=False,
        range=(0, 1),
        margin=1,
        dots_size=2,
        stroke_style={"width": 2},
        allow_interruptions=True,
        **_STANDALONE,
    )
    chart.add(title, values)
    shown = ", ".join("-" if v is None else f"{v:.0%}" for v in values)
    return _described(chart, title, f"{title}: {shown}")


def self_contained(svg: str) -> bool:
    """No script and no URL other than the SVG namespaces: the chart loads nothing."""
    return "<script" not in svg.lower() and all(url in NAMESPACES for url in _URL.findall(svg))


def _described(chart, title: str, desc: str) -> str:
    """The chart's SVG with its text alternative as the first children of the root element."""
    chart.add_xml_filter(_strip_scripts)  # (pygal ignores an `xml_filters` argument)
    svg = chart.render(is_unicode=True)
    svg = re.sub(r"<title>.*?</title>", "", svg, count=1, flags=re.S)
    alt = f"<title>{escape(title)}</title><desc>{escape(desc)}</desc>"
    svg = re.sub(r"(<svg\b[^>]*>)", lambda m: m.group(1) + alt, svg, count=1)
    svg = svg.replace("<svg ", '<svg role="img" ', 1)
    if not self_contained(svg):
        raise RuntimeError("pygal wrote a chart that references something outside itself")
    return svg


def _month_label(month: str) -> str:
    """'2024-06' -> 'Jun 24'."""
    return f"{date(int(month[:4]), int(month[5:]), 1):%b %y}"
