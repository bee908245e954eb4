"""The demo's template payloads ship inside the package (cli/demo_templates), so `trackrecord
demo` runs from a wheel; they must stay the same bytes as the test fixtures of the same names,
which tests/fixtures/SOURCES.md traces to their origin."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from cli.demo_fixtures import FIXTURES, fixture

ROOT = Path(__file__).resolve().parent.parent


def _templates() -> list[Path]:
    return sorted(p for p in FIXTURES.rglob("*.json"))


def test_each_template_is_the_test_fixture_of_the_same_name():
    templates = _templates()
    assert len(templates) >= 6
    for path in templates:
        twin = ROOT / "tests" / "fixtures" / path.relative_to(FIXTURES)
        assert path.read_bytes() == twin.read_bytes(), f"{path.name} differs from {twin}"


def test_every_template_the_demo_reads_is_shipped_and_declared_as_package_data():
    # Every "github/….json" or "jira/….json" the demo's modules name, passed to fixture()
    # directly or through a variable.
    names = re.compile(r'"((?:github|jira)/[A-Za-z0-9_.]+\.json)"')
    used = set()
    for module in (ROOT / "cli").glob("demo*.py"):
        used |= set(names.findall(module.read_text()))
    assert used, "the demo reads no template: the test no longer sees its calls"
    shipped = {str(p.relative_to(FIXTURES)) for p in _templates()}
    assert used <= shipped
    for name in used:
        assert isinstance(fixture(name), dict)
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]
    assert "demo_templates/*/*.json" in package_data["cli"]
