"""Imports run one way: down the layers, never up.

    trackrecord (foundation) < ledger (domain) < reports < connectors < workers < webhook_app, cli

`reports` (monthly client reports: content, charts, formats) reads only the ledger's figures.

A package imports itself and the packages below it. `cli` sits on top and may import the web
app (`trackrecord serve` builds it); the web app never imports the CLI. Every import counts,
function-level and TYPE_CHECKING ones included: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RANK = {
    "trackrecord": 0,
    "ledger": 1,
    "reports": 2,
    "connectors": 3,
    "workers": 4,
    "webhook_app": 5,
    "cli": 6,
}


def allowed(importer: str, imported: str) -> bool:
    return RANK[imported] <= RANK[importer]


def _module(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, dotted name) of every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    module = _module(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module
            found.append((node.lineno, name))
    return found


def violations(root: Path = ROOT) -> list[str]:
    out = []
    for package in RANK:
        for path in sorted((root / package).rglob("*.py")):
            for line, name in imports(path, root):
                top = name.partition(".")[0]
                if top in RANK and not allowed(package, top):
                    out.append(f"{path.relative_to(root)}:{line}: {package} imports {name}")
    return out


def test_every_package_imports_only_itself_and_the_layers_below():
    assert violations() == []


@pytest.mark.parametrize(
    "importer, imported, ok",
    [
        ("trackrecord", "ledger", False),
        ("ledger", "connectors", False),
        ("connectors", "workers", False),
        ("workers", "webhook_app", False),
        ("webhook_app", "cli", False),
        ("cli", "webhook_app", True),
        ("webhook_app", "workers", True),
        ("ledger", "trackrecord", True),
    ],
)
def test_the_order_of_the_layers(importer, imported, ok):
    assert allowed(importer, imported) is ok


def test_the_check_sees_lazy_and_relative_imports(tmp_path):
    (tmp_path / "ledger").mkdir()
    (tmp_path / "ledger" / "__init__.py").write_text("from .store import x\n")
    (tmp_path / "ledger" / "store.py").write_text(
        "def f():\n    from workers import context\n    import webhook_app.api\n"
    )
    assert violations(tmp_path) == [
        "ledger/store.py:2: ledger imports workers",
        "ledger/store.py:3: ledger imports webhook_app.api",
    ]


def test_every_package_is_checked():
    # A new top-level package must be given its place in the order.
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench"}
    assert packages == set(RANK)
