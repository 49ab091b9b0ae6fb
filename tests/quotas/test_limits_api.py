"""The limits of an API key, a gateway or a resource group in the management API: read them with
what is used in the current UTC window, set and remove a token quota, a spend budget (removal
archives, PUT restores) and TPM/RPM; 400s name the field; the role matrix."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from rest_framework.test import APIClient

from core.models import AuditEvent
from gateway.models import Role
from gateway.setup import gateway_create
from keys.models import ApiKeyStatus, SuspendedReason
from quotas.models import RateLimit, SpendBudget, TokenQuota
from tests.factories import MembershipFactory, UsageEventFactory, UserFactory
from tests.support.people import api_client_as, member_of

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 18, 15, 30, tzinfo=UTC)  # a Wednesday


@pytest.fixture
def gateway(group):
    gateway, _, _ = gateway_create(resource_group=group, name="prod", key_name="first")
    return gateway


@pytest.fixture
def api_key(gateway):
    return gateway.api_keys.get()


@pytest.fixture
def admin_user(group):
    return member_of(group, Role.ADMIN)


@pytest.fixture
def admin(admin_user) -> APIClient:
    return api_client_as(admin_user)


def owners(group, gateway, api_key) -> dict[str, str]:
    return {
        "api_key": f"/api/v1/api-keys/{api_key.pk}/limits",
        "gateway": f"/api/v1/gateways/{gateway.pk}/limits",
        "resource_group": f"/api/v1/resource-groups/{group.pk}/limits",
    }


def test_an_owner_without_limits_has_none(admin, group, gateway, api_key):
    for level, url in owners(group, gateway, api_key).items():
        body = admin.get(url).json()
        assert body["level"] == level
        assert (body["token_quota"], body["spend_budget"], body["rate_limit"]) == (None, None, None)


@pytest.mark.parametrize("level", ["api_key", "gateway", "resource_group"])
def test_limits_set_on_each_level_are_read_back_with_their_use_this_window(admin, group, gateway, api_key, level):
    url = owners(group, gateway, api_key)[level]
    with time_machine.travel(NOW, tick=False):
        UsageEventFactory(api_key=api_key, total_tokens=700, cost_usd=Decimal("0.0123456789"))
        UsageEventFactory(api_key=api_key, total_tokens=5000, cost_usd=Decimal(3), created_at=NOW - timedelta(days=2))
        assert admin.put(f"{url}/token-quota", {"limit_tokens": 10_000, "refresh_period": "daily"}).status_code == 200
        assert (
            admin.put(
                f"{url}/spend-budget", {"limit_usd": "12.5", "refresh_period": "weekly", "mode": "hard"}
            ).status_code
            == 200
        )
        body = admin.put(f"{url}/rate-limit", {"tokens_per_minute": 2000}, format="json").json()

    assert body["token_quota"] == {
        "limit_tokens": 10_000,
        "refresh_period": "daily",
        "mode": "soft",
        "used_tokens": 700,  # today only
        "window_start": "2026-11-18T00:00:00Z",
        "resets_at": "2026-11-19T00:00:00Z",
    }
    assert body["spend_budget"] == {
        "limit_usd": "12.5000",
        "refresh_period": "weekly",
        "mode": "hard",
        "active": True,
        "archived": False,
        "current_spend_usd": "3.0123456789",  # since Monday 16 November
        "window_start": "2026-11-16T00:00:00Z",
        "resets_at": "2026-11-23T00:00:00Z",
    }
    assert body["rate_limit"] == {"tokens_per_minute": 2000, "requests_per_minute": None}


def test_removing_a_budget_archives_it_and_putting_one_restores_it(admin, api_key):
    url = f"/api/v1/api-keys/{api_key.pk}/limits"
    admin.put(f"{url}/spend-budget", {"limit_usd": "10", "refresh_period": "monthly"})

    assert admin.delete(f"{url}/spend-budget").status_code == 204
    archived = admin.get(url).json()["spend_budget"]
    assert archived["archived"] is True
    assert SpendBudget.objects.get(api_key=api_key).archived_at is not None
    # Vercel's quotas API agrees: the key has no quota now.
    assert admin.get("/api/v1/quotas", {"quotaEntityId": api_key.quota_entity_id}).status_code == 404

    restored = admin.put(f"{url}/spend-budget", {"limit_usd": "20", "refresh_period": "monthly"}).json()
    assert restored["spend_budget"]["archived"] is False
    assert restored["spend_budget"]["limit_usd"] == "20.0000"
    assert SpendBudget.objects.filter(api_key=api_key).count() == 1


def test_removing_a_token_quota_and_a_rate_limit_leaves_the_owner_unlimited(admin, gateway):
    url = f"/api/v1/gateways/{gateway.pk}/limits"
    admin.put(f"{url}/token-quota", {"limit_tokens": 5})
    admin.put(f"{url}/rate-limit", {"requests_per_minute": 60})

    assert admin.delete(f"{url}/token-quota").status_code == 204
    assert admin.delete(f"{url}/rate-limit").status_code == 204
    assert not TokenQuota.objects.filter(gateway=gateway).exists()
    assert not RateLimit.objects.filter(gateway=gateway).exists()


def test_raising_a_token_quota_reactivates_the_keys_it_suspended(admin, gateway, api_key):
    api_key.status, api_key.suspended_reason = ApiKeyStatus.SUSPENDED, SuspendedReason.TOKEN_QUOTA
    api_key.save()
    admin.put(f"/api/v1/gateways/{gateway.pk}/limits/token-quota", {"limit_tokens": 1_000_000})
    api_key.refresh_from_db()
    assert api_key.status == ApiKeyStatus.ACTIVE


@pytest.mark.parametrize(
    ("kind", "payload", "field"),
    [
        ("token-quota", {"limit_tokens": 0}, "limit_tokens"),
        ("token-quota", {"limit_tokens": 10, "refresh_period": "hourly"}, "refresh_period"),
        ("token-quota", {"limit_tokens": 10, "mode": "strict"}, "mode"),
        ("spend-budget", {"limit_usd": "0.99"}, "limit_usd"),
        ("spend-budget", {"limit_usd": "1.00001"}, "limit_usd"),
        ("spend-budget", {"limit_usd": "ten"}, "limit_usd"),
        ("spend-budget", {"limit_usd": "5", "refresh_period": "yearly"}, "refresh_period"),
        ("rate-limit", {}, "tokens_per_minute"),
        ("rate-limit", {"requests_per_minute": -1}, "requests_per_minute"),
    ],
)
def test_an_invalid_limit_is_a_400_naming_the_field_and_changes_nothing(admin, gateway, kind, payload, field):
    response = admin.put(f"/api/v1/gateways/{gateway.pk}/limits/{kind}", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()
    body = admin.get(f"/api/v1/gateways/{gateway.pk}/limits").json()
    assert (body["token_quota"], body["spend_budget"], body["rate_limit"]) == (None, None, None)


@pytest.mark.parametrize(
    ("role", "reads", "writes"),
    [
        (Role.OWNER, 200, 200),
        (Role.ADMIN, 200, 200),
        (Role.DEVELOPER, 200, 403),
        (Role.AUDITOR, 200, 403),
        (Role.VIEWER, 200, 403),
    ],
)
def test_the_role_matrix_for_limits(group, gateway, api_key, role, reads, writes):
    client = api_client_as(member_of(group, role))
    for url in owners(group, gateway, api_key).values():
        assert client.get(url).status_code == reads
        assert client.put(f"{url}/token-quota", {"limit_tokens": 10}).status_code == writes
        assert client.delete(f"{url}/spend-budget").status_code == (204 if writes == 200 else writes)


def test_a_non_member_gets_404_for_every_owner(group, gateway, api_key):
    stranger = api_client_as(MembershipFactory(role=Role.OWNER).user)
    for url in owners(group, gateway, api_key).values():
        assert stranger.get(url).status_code == 404
        assert stranger.put(f"{url}/token-quota", {"limit_tokens": 10}).status_code == 404
    assert not TokenQuota.objects.exists()


def test_every_limit_change_is_in_the_audit_trail_with_who_before_and_after(admin, admin_user, gateway):
    url = f"/api/v1/gateways/{gateway.pk}/limits/spend-budget"
    admin.put(url, {"limit_usd": "10", "refresh_period": "monthly"})
    admin.put(url, {"limit_usd": "15", "refresh_period": "monthly"})
    admin.put(url, {"limit_usd": "15", "refresh_period": "monthly"})  # no change: no event
    admin.delete(url)

    events = list(AuditEvent.objects.filter(target_type="spend_budget").order_by("id"))
    assert [e.action for e in events] == ["spend_budget.create", "spend_budget.update", "spend_budget.archive"]
    assert all(
        e.actor == admin_user and e.via == "api" and e.resource_group_id == gateway.resource_group_id for e in events
    )
    assert events[0].before is None
    assert events[0].after["limit_usd"] == "10"
    assert (events[1].before["limit_usd"], events[1].after["limit_usd"]) == ("10", "15")
    assert events[2].before["archived_at"] is None and events[2].after["archived_at"] is not None
    assert events[0].target_name == "gateway 'prod'"


def test_anonymous_requests_are_refused(gateway):
    assert APIClient().get(f"/api/v1/gateways/{gateway.pk}/limits").status_code in (401, 403)
    assert UserFactory()  # a user exists, but the request carries no credentials
