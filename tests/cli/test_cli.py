"""The `aigw` CLI end to end (SPEC §6): the real command in a subprocess against a live aigw
server, as a script would run it: create a gateway, a budgeted key, read the budget, rotate,
revoke, with `--json` parsed; tables for people; one-line errors and exit codes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from decimal import Decimal

import pytest

from core.models import AuditEvent
from gateway.models import Role
from keys.models import ApiKey, ApiKeyStatus
from keys.services import api_token_create
from tests.factories import MembershipFactory, UserFactory


def aigw(*args: str, url: str, token: str | None, stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run `python -m aigw.cli ARGS` with AIGW_URL and AIGW_TOKEN set (or unset)."""
    env = {k: v for k, v in os.environ.items() if k not in ("AIGW_URL", "AIGW_TOKEN")}
    env.update({"AIGW_URL": url, "COLUMNS": "200", "NO_COLOR": "1"})
    if token is not None:
        env["AIGW_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "aigw.cli", *args], env=env, input=stdin, capture_output=True, text=True, timeout=60
    )


def as_json(result: subprocess.CompletedProcess):
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def admin_token():
    user = UserFactory(username="ops")
    membership = MembershipFactory(user=user, role=Role.ADMIN)
    _, token = api_token_create(user=user, name="cli test")
    return membership.resource_group, token


def test_a_script_goes_from_nothing_to_a_budgeted_key_then_rotates_and_revokes_it(live, admin_token):
    group, token = admin_token
    run = lambda *args: aigw(*args, url=live.url, token=token)  # noqa: E731

    gateway = as_json(run("gateways", "create", "--name", "support-bot", "--resource-group", str(group.pk), "--json"))
    assert gateway["name"] == "support-bot" and gateway["api_key"]["secret"].startswith("aigw_")

    key = as_json(
        run(
            "api-keys", "create", "--gateway", str(gateway["id"]), "--name", "batch",
            "--budget", "10", "--refresh-period", "monthly", "--json",
        )
    )  # fmt: skip
    assert key["secret"].startswith("aigw_") and key["quota"]["refreshPeriod"] == "monthly"

    quota = as_json(run("quotas", "get", str(key["id"]), "--json"))
    assert quota["quotaEntityId"] == f"api_key_id_{key['id']}"
    assert Decimal(str(quota["limitAmount"])) == 10
    assert Decimal(str(quota["currentSpend"])) == 0
    assert quota["refreshPeriod"] == "monthly"

    listed = as_json(run("api-keys", "list", "--gateway", str(gateway["id"]), "--json"))
    assert {row["name"] for row in listed} == {"support-bot key", "batch"}
    assert all("secret" not in row for row in listed)

    rotated = as_json(run("api-keys", "rotate", str(key["id"]), "--json"))
    assert rotated["id"] == key["id"] and rotated["secret"] != key["secret"]

    revoked = as_json(run("api-keys", "revoke", str(key["id"]), "--yes", "--json"))
    assert revoked["status"] == "revoked"
    assert ApiKey.objects.get(pk=key["id"]).status == ApiKeyStatus.REVOKED
    actions = set(AuditEvent.objects.filter(actor__username="ops").values_list("action", flat=True))
    assert {"gateway.create", "api_key.create", "spend_budget.create", "api_key.rotate", "api_key.revoke"} <= actions


def test_quotas_set_changes_removes_and_restores_a_budget_and_gateways_duplicate_and_delete(live, admin_token):
    group, token = admin_token
    run = lambda *args: aigw(*args, url=live.url, token=token)  # noqa: E731
    gateway = as_json(run("gateways", "create", "--name", "prod", "--resource-group", str(group.pk), "--json"))
    key_id = str(gateway["api_key"]["id"])

    assert Decimal(str(as_json(run("quotas", "set", key_id, "--budget", "5", "--json"))["limitAmount"])) == 5
    changed = as_json(run("quotas", "set", key_id, "--budget", "7.5", "--refresh-period", "daily", "--json"))
    assert (Decimal(str(changed["limitAmount"])), changed["refreshPeriod"]) == (Decimal("7.5"), "daily")
    assert run("quotas", "remove", key_id).returncode == 0
    missing = run("quotas", "get", key_id)
    assert missing.returncode == 1 and "Quota not found" in missing.stderr
    restored = as_json(run("quotas", "set", key_id, "--budget", "20", "--json"))
    assert Decimal(str(restored["limitAmount"])) == 20 and restored["active"] is True

    copy = as_json(run("gateways", "duplicate", str(gateway["id"]), "--json"))
    assert copy["name"] == "prod (copy)"
    refused = aigw("gateways", "delete", str(copy["id"]), url=live.url, token=token, stdin="n\n")
    assert refused.returncode != 0
    assert run("gateways", "delete", str(copy["id"]), "--yes").returncode == 0
    names = [row["name"] for row in as_json(run("gateways", "list", "--json"))]
    assert names == ["prod"]


def test_people_get_tables(live, admin_token):
    group, token = admin_token
    aigw("gateways", "create", "--name", "support-bot", "--resource-group", str(group.pk), url=live.url, token=token)

    result = aigw("gateways", "list", url=live.url, token=token)
    keys = aigw("api-keys", "list", url=live.url, token=token)
    usage = aigw("usage", "--group-by", "model", url=live.url, token=token)

    assert result.returncode == 0
    header, _rule, row = [line for line in result.stdout.splitlines() if line.strip()][:3]
    assert header.split() == ["ID", "Name", "Group", "Status"]
    assert "support-bot" in row and "enabled" in row
    assert "Unlimited" in keys.stdout and "active" in keys.stdout
    assert usage.returncode == 0 and "No usage in this time range." in usage.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_failures_are_one_line_with_an_exit_code(live, admin_token):
    _, token = admin_token

    no_token = aigw("gateways", "list", url=live.url, token=None)
    unreachable = aigw("gateways", "list", url=f"http://127.0.0.1:{_free_port()}", token=token)
    bad_token = aigw("gateways", "list", url=live.url, token="aigwp_not-a-token")
    unknown = aigw("gateways", "delete", "999999", "--yes", url=live.url, token=token)
    bad_period = aigw("quotas", "set", "1", "--budget", "5", "--refresh-period", "yearly", url=live.url, token=token)

    assert (no_token.returncode, no_token.stderr.count("\n")) == (2, 1)
    assert "AIGW_TOKEN" in no_token.stderr
    assert unreachable.returncode == 3 and unreachable.stderr.startswith("error: cannot reach")
    assert bad_token.returncode == 1 and "HTTP 401" in bad_token.stderr and bad_token.stderr.count("\n") == 1
    assert unknown.returncode == 1 and "not found" in unknown.stderr.lower()
    assert bad_period.returncode == 2 and "--refresh-period" in bad_period.stderr
    for result in (no_token, unreachable, bad_token, unknown):
        assert token not in result.stdout + result.stderr
