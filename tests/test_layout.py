"""The layout's promise (docs/architecture.md): every module of an app is either part of its
domain, listed in a domain contract of pyproject.toml that import-linter checks in `.ci/run`, or a
module that composes apps for people and scripts (pages, APIs, forms, URLs, management commands,
gateway.setup, usage.dashboard). A new module in neither group would escape the layer rules."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ("gateway", "keys", "quotas", "usage")
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
