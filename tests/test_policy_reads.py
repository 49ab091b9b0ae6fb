"""Every read a user makes goes through the one policy (issue 11, STYLE.md habit 2).

The console views, the API views, the forms and the selectors that answer a user read objects
with `Model.objects.restrict(user, action)`; a plain `Model.objects.filter(...)` there could show
another group's objects. This test reads the source of those modules and fails on any
`<Model>.objects.<method>` other than `.restrict(...)` and `.none()`. In a selector module the
rule holds for every function that takes a `user` (the others are handed objects or ids that a
restricted read produced). The data plane, the services (writes), the jobs and the management
commands are not user reads and are not checked. A read that cannot go through the policy (rows
with no resource group of their own, keyed by an object a restricted read returned) says why in
a `# policy: …` comment on its line or the line above; that is the only way past this test.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ("gateway", "keys", "quotas", "usage")
ALLOWED = {"restrict", "none"}


def _user_facing_modules() -> list[Path]:
    modules = []
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            name = path.name
            if "migrations" in path.parts or "proxy" in path.parts or "management" in path.parts:
                continue
            user_facing = name.startswith(("views", "api", "forms", "selectors")) or name == "dashboard.py"
            if user_facing and name != "api_errors.py":
                modules.append(path)
    return modules


def _objects_calls(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, method) of every `<something>.objects.<method>` in `tree`."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) and node.value.attr == "objects":
            found.append((node.lineno, node.attr))
    return found


def _violations(path: Path, root: Path = ROOT) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    scopes: list[ast.AST] = [tree]
    if path.name.startswith("selectors"):
        scopes = [
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and any(arg.arg == "user" for arg in node.args.args + node.args.kwonlyargs)
        ]
    relative = path.relative_to(root)
    lines = path.read_text().splitlines()

    def explained(line: int) -> bool:
        return any("# policy:" in lines[i - 1] for i in (line - 1, line) if i >= 1)

    return sorted(
        {
            f"{relative}:{line}: .objects.{method}(…) without restrict(user, action)"
            for scope in scopes
            for line, method in _objects_calls(scope)
            if method not in ALLOWED and not explained(line)
        }
    )


def test_the_checked_modules_are_the_ones_users_read_through():
    names = {str(p.relative_to(ROOT)) for p in _user_facing_modules()}
    assert {
        "gateway/api.py",
        "gateway/views.py",
        "gateway/views_groups.py",
        "gateway/selectors.py",
        "usage/api.py",
        "quotas/api.py",
        "quotas/views.py",
        "quotas/forms.py",
        "keys/views.py",
        "keys/forms.py",
    } <= names
    assert "gateway/services.py" not in names and "dataplane/registry.py" not in names


def test_no_view_api_form_or_selector_reads_objects_without_the_policy():
    problems = [problem for path in _user_facing_modules() for problem in _violations(path)]
    assert problems == []


def test_the_check_catches_a_plain_objects_read(tmp_path):
    (tmp_path / "gateway").mkdir()
    sample = tmp_path / "gateway" / "views.py"
    sample.write_text("def page(request):\n    return Gateway.objects.filter(pk=1)\n")
    assert _violations(sample, tmp_path) == ["gateway/views.py:2: .objects.filter(…) without restrict(user, action)"]
    sample.write_text("def page(request):\n    return Gateway.objects.restrict(request.user).filter(pk=1)\n")
    assert _violations(sample, tmp_path) == []
    selector = tmp_path / "gateway" / "selectors.py"
    selector.write_text(
        "def mine(*, user):\n    return ApiKey.objects.all()\n\n"
        "def of(ids):\n    return ApiKey.objects.filter(pk__in=ids)\n"
    )
    assert _violations(selector, tmp_path) == ["gateway/selectors.py:2: .objects.all(…) without restrict(user, action)"]
    sample.write_text(
        "def page(request):\n"
        "    # policy: periods of a budget read through restrict above\n"
        "    return LimitPeriod.objects.filter(pk=1)\n"
    )
    assert _violations(sample, tmp_path) == []
