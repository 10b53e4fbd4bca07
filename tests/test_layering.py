"""The layering docs/architecture.md states, checked on the imports of the code itself.

Apps depend one way, down the architecture's table: an app imports from the apps above it,
never from one below. Inside ``syncengine`` the job lifecycle (``jobs``) knows neither engine,
and the feed engine (``feeds``) never reaches into the connector sync engine (``sync``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = [
    "accounts",
    "connectors",
    "integrations",
    "syncengine",
    "exports",
    "webhooks",
    "sftpgateway",
]
# Inside syncengine: a package and the packages it must not import.
SYNCENGINE_FORBIDDEN = {
    "jobs": ("syncengine.feeds", "syncengine.sync"),
    "feeds": ("syncengine.sync",),
}


def _imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in a file, lazy ones inside functions included."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _sources(package: Path) -> list[Path]:
    return [path for path in package.rglob("*.py") if "migrations" not in path.parts]


@pytest.mark.parametrize("app", APPS)
def test_an_app_imports_only_from_the_apps_above_it(app):
    below = APPS[APPS.index(app) + 1 :]
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in _sources(ROOT / app)
        for line, module in _imports(path)
        if module.split(".")[0] in below
    ]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("package", sorted(SYNCENGINE_FORBIDDEN))
def test_syncengine_packages_import_in_one_direction(package):
    forbidden = SYNCENGINE_FORBIDDEN[package]
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in _sources(ROOT / "syncengine" / package)
        for line, module in _imports(path)
        if any(module == name or module.startswith(name + ".") for name in forbidden)
    ]
    assert not wrong, "\n".join(wrong)
