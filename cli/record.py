"""`trackrecord record TEAM --from YYYY-MM-DD --to YYYY-MM-DD [--json]`.

The same record object as `GET /api/v1/teams/<team>/track-record` (ledger.record), printed as
a table for people or as the API's JSON for scripts. The table opens with the record's
`summary`, the words the API and the badge use too.
"""

from __future__ import annotations

import json
from datetime import date, datetime

import click

from cli.common import load_settings, open_database
from ledger.reading import FIRST_YEAR, LAST_YEAR, supported
from ledger.record import team_record

# (field, label, format) in the order a lead reads them: what was due, how it went, trust.
ROWS = (
    ("commitments_due", "commitments due", "{}"),
    ("pending", "pending (not yet due)", "{}"),
    ("delivered_early", "delivered early", "{}"),
    ("delivered_on_time", "delivered on time", "{}"),
    ("delivered_late", "delivered late", "{}"),
    ("missed", "missed", "{}"),
    ("dropped", "dropped", "{}"),
    ("descoped", "descoped", "{}"),
    ("excluded", "excluded by hand", "{}"),
    ("on_time_rate", "on-time rate", "{:.0%}"),
    ("say_do_ratio", "say/do ratio", "{:.0%}"),
    ("slip_days_median", "slip, median (days)", "{:.1f}"),
    ("slip_days_p90", "slip, 90th percentile (days)", "{:.1f}"),
    ("streak_current", "streak, current", "{}"),
    ("streak_longest", "streak, longest", "{}"),
    ("small_wins", "small wins", "{}"),
    ("unpromised_deliveries", "unpromised deliveries", "{}"),
    ("first_response_hours_median", "first response, median (hours)", "{:.1f}"),
    ("lead_time_days_median", "lead time, median (days)", "{:.1f}"),
    ("first_win_days", "time to first win (days)", "{:.1f}"),
)


def _date(_ctx, param, value: str) -> date:
    try:
        day = datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date YYYY-MM-DD", param=param) from None
    if not supported(day):
        raise click.BadParameter(
            f"{value!r} is out of range (years {FIRST_YEAR} to {LAST_YEAR})", param=param
        )
    return day


def render_table(rec: dict) -> str:
    lines = [f"Track record of {rec['team']}, {rec['from']} to {rec['to']} (as of {rec['as_of']})"]
    lines += [f"  {rec['summary']}", ""]
    width = max(len(label) for _, label, _ in ROWS) + 2
    for field, label, fmt in ROWS:
        value = rec[field]
        lines.append(f"  {label:<{width}}{'-' if value is None else fmt.format(value)}")
    trust = rec["trust_score"]
    lines.append(
        f"  {'trust score':<{width}}{trust['estimate']:.0%} "
        f"(90% interval {trust['low']:.0%}-{trust['high']:.0%})"
    )
    lines.append("")
    lines.append(f"  {'month':<9}{'due':>5}{'kept':>6}{'late':>6}{'miss/drop':>11}{'on-time':>9}")
    for m in rec["months"]:
        kept = m["delivered_early"] + m["delivered_on_time"]
        rate = "-" if m["on_time_rate"] is None else f"{m['on_time_rate']:.0%}"
        lines.append(
            f"  {m['month']:<9}{m['commitments_due']:>5}{kept:>6}{m['delivered_late']:>6}"
            f"{m['missed'] + m['dropped']:>11}{rate:>9}"
        )
    return "\n".join(lines)


@click.command()
@click.argument("team")
@click.option("--from", "period_from", required=True, callback=_date, help="YYYY-MM-DD")
@click.option("--to", "period_to", required=True, callback=_date, help="YYYY-MM-DD")
@click.option("--json", "as_json", is_flag=True, help="The API's JSON record instead of a table.")
def record(team: str, period_from: date, period_to: date, as_json: bool) -> None:
    """Print TEAM's track record for the period (promised dates from --from to --to)."""

    settings = load_settings()
    model = settings.config.team(team)
    if model is None:
        raise click.BadParameter(f"no team {team!r} in the configuration", param_hint="TEAM")
    if period_from > period_to:
        raise click.BadParameter("--from is after --to", param_hint="--from")
    with open_database(settings)() as session:
        rec = team_record(session.connection(), model, period_from=period_from, period_to=period_to)
    click.echo(json.dumps(rec, indent=2) if as_json else render_table(rec))
