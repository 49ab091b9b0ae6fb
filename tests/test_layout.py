"""The layout's promise (docs/architecture.md): every module of an app is either part of its
domain, listed in a domain contract of pyproject.toml that import-linter checks in `.ci/run`, or a
module that composes apps for people and scripts (pages, APIs, forms, URLs, management commands,
gateway.setup, usage.dashboard). A new module in neither group would escape the layer rules.

What one room shares with another has a public name: no module imports a `_private` name from
another room (a helper two apps need moves to the lower one, or to `core`, and says so)."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ("gateway", "keys", "quotas", "usage")
ROOMS = ("config", "core", "dataplane", *APPS, "aigw")
COMPOSING = re.compile(r"^(views\w*|api\w*|forms\w*|urls\w*|management\..+|setup|dashboard)$")


def _modules(app: str) -> set[str]:
    found = set()
    for path in (ROOT / app).rglob("*.py"):
        relative = path.relative_to(ROOT / app).with_suffix("")
        if "migrations" in relative.parts or relative.name == "__init__":
            continue
        found.add(".".join(relative.parts))
    return found


def _domain_sources() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    sources: set[str] = set()
    for contract in config["contracts"]:
        if contract["name"].startswith("Domain:"):
            sources.update(contract["source_modules"])
    return sources


def test_every_app_module_is_domain_or_composing():
    domain = _domain_sources()
    unplaced = [
        f"{app}.{module}"
        for app in APPS
        for module in sorted(_modules(app))
        if f"{app}.{module}" not in domain and not COMPOSING.match(module)
    ]
    assert unplaced == [], f"add these to a 'Domain:' contract in pyproject.toml, or compose elsewhere: {unplaced}"


def test_domain_contracts_name_only_existing_modules():
    existing = {f"{app}.{module}" for app in APPS for module in _modules(app)}
    assert sorted(_domain_sources() - existing) == []


def test_no_composing_module_is_listed_as_domain():
    listed = [name for name in _domain_sources() if COMPOSING.match(name.split(".", 1)[1])]
    assert listed == []


def _private_names_imported_across_rooms(root: Path = ROOT) -> list[str]:
    """`path:line: module.name` for every `from <another room's module> import _name`."""
    found = []
    for room in ROOMS:
        for path in sorted((root / room).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
                    continue
                source = node.module.split(".")[0]
                if source in ROOMS and source != room:
                    found.extend(
                        f"{path.relative_to(root)}:{node.lineno}: {node.module}.{alias.name}"
                        for alias in node.names
                        if alias.name.startswith("_")
                    )
    return found


def test_no_room_imports_a_private_name_of_another():
    assert _private_names_imported_across_rooms() == []


def test_the_private_name_check_catches_one(tmp_path):
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "views.py").write_text(
        "from quotas.views import _dollars, budget_line\nfrom keys.forms import _expires_at_field\n"
    )
    assert _private_names_imported_across_rooms(tmp_path) == ["keys/views.py:1: quotas.views._dollars"]
