"""Every API key a user may see at /api/v1/api-keys (Vercel's API keys page), one key's details
and its edit (name, expiry), with the role matrix; and duplicating a gateway (SPEC §2)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from rest_framework.test import APIClient

from gateway.models import Gateway, Role
from gateway.setup import gateway_create
from keys.models import ApiKeyStatus
from keys.services import api_key_create, api_key_revoke
from quotas.models import RefreshPeriod
from quotas.services import rate_limit_set, spend_budget_create, token_quota_set
from tests.factories import MembershipFactory, ResourceGroupFactory, UsageEventFactory, UserFactory
from tests.support.people import api_client_as, member_of

pytestmark = pytest.mark.django_db

KEYS = "/api/v1/api-keys"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def gateway(group):
    gateway, _, _ = gateway_create(resource_group=group, name="prod", key_name="first")
    return gateway


@pytest.fixture
def admin(group) -> APIClient:
    return api_client_as(member_of(group, Role.ADMIN))


# Listing ------------------------------------------------------------------------------------


def test_the_list_has_every_key_of_the_users_groups_and_none_of_others(group, gateway, admin):
    other_gateway, _, _ = gateway_create(resource_group=group, name="staging", key_name="stage key")
    gateway_create(resource_group=ResourceGroupFactory(), name="elsewhere", key_name="not mine")

    names = {key["name"] for key in admin.get(KEYS).json()["results"]}

    assert names == {"first", "stage key"}
    only_staging = admin.get(KEYS, {"gateway": other_gateway.pk}).json()["results"]
    assert [key["name"] for key in only_staging] == ["stage key"]


def test_the_list_shows_each_keys_budget_and_spend_in_the_current_window(group, gateway, admin):
    budgeted, _ = api_key_create(gateway=gateway, name="budgeted")
    spend_budget_create(api_key=budgeted, limit_usd=Decimal("10"), refresh_period=RefreshPeriod.MONTHLY)
    with time_machine.travel(NOW, tick=False):
        UsageEventFactory(api_key=budgeted, total_tokens=100, cost_usd=Decimal("1.04"))
        UsageEventFactory(
            api_key=budgeted, total_tokens=100, cost_usd=Decimal("5"), created_at=NOW - timedelta(days=31)
        )
        rows = {key["name"]: key for key in admin.get(KEYS).json()["results"]}

    assert rows["budgeted"]["spend_budget"] == {
        "limit_usd": "10.0000",
        "current_spend_usd": "1.0400000000",
        "refresh_period": "monthly",
        "active": True,
    }
    assert rows["first"]["spend_budget"] is None  # Unlimited quota
    assert "secret" not in rows["budgeted"] and "hashed_secret" not in rows["budgeted"]


def test_listing_keys_takes_a_constant_number_of_queries(group, gateway, admin, django_assert_max_num_queries):
    for n in range(15):
        key, _ = api_key_create(gateway=gateway, name=f"k{n}")
        spend_budget_create(api_key=key, limit_usd=Decimal("5"), refresh_period=RefreshPeriod.DAILY)
    with django_assert_max_num_queries(8):
        response = admin.get(KEYS)
    assert response.json()["count"] == 16


def test_the_status_filter_uses_the_effective_status(group, gateway, admin):
    with time_machine.travel(NOW, tick=False):
        past_expiry, _ = api_key_create(gateway=gateway, name="past expiry", expires_at=NOW + timedelta(hours=1))
        revoked, _ = api_key_create(gateway=gateway, name="revoked")
        api_key_revoke(api_key=revoked)
    with time_machine.travel(NOW + timedelta(hours=2), tick=False):
        expired = [k["name"] for k in admin.get(KEYS, {"status": "expired"}).json()["results"]]
        active = [k["name"] for k in admin.get(KEYS, {"status": "active"}).json()["results"]]
        revoked_names = [k["name"] for k in admin.get(KEYS, {"status": "revoked"}).json()["results"]]

    assert expired == ["past expiry"]
    assert active == ["first"]
    assert revoked_names == ["revoked"]


@pytest.mark.parametrize(("params", "field"), [({"status": "paused"}, "status"), ({"gateway": "x"}, "gateway")])
def test_a_bad_filter_is_a_400_naming_it(admin, params, field):
    response = admin.get(KEYS, params)
    assert response.status_code == 400
    assert field in response.json()


def test_a_deleted_gateways_keys_are_not_listed(group, gateway, admin):
    admin.delete(f"/api/v1/gateways/{gateway.pk}")
    assert admin.get(KEYS).json()["count"] == 0


# One key: read and edit ---------------------------------------------------------------------


def test_reading_one_key_shows_it_without_its_secret(gateway, admin):
    key = gateway.api_keys.get()
    body = admin.get(f"{KEYS}/{key.pk}").json()
    assert body["name"] == "first"
    assert body["quotaEntityId"] == f"api_key_id_{key.pk}"
    assert "secret" not in body


def test_a_key_is_renamed_and_given_an_expiry_then_unlimited_validity_again(gateway, admin):
    key = gateway.api_keys.get()
    url = f"{KEYS}/{key.pk}"
    with time_machine.travel(NOW, tick=False):
        renamed = admin.patch(url, {"name": "ci runner", "expires_at": "2027-01-31T00:00:00Z"}, format="json")
        assert renamed.status_code == 200
        assert renamed.json()["name"] == "ci runner"
        assert renamed.json()["expires_at"] == "2027-01-31T00:00:00Z"

        cleared = admin.patch(url, {"expires_at": None}, format="json")

    assert cleared.json()["expires_at"] is None
    key.refresh_from_db()
    assert (key.name, key.expires_at) == ("ci runner", None)


def test_an_expired_key_given_a_future_expiry_is_active_again(gateway, admin):
    with time_machine.travel(NOW, tick=False):
        key, _ = api_key_create(gateway=gateway, name="short", expires_at=NOW + timedelta(minutes=5))
    with time_machine.travel(NOW + timedelta(hours=1), tick=False):
        key.status = ApiKeyStatus.EXPIRED
        key.save(update_fields=["status"])
        response = admin.patch(f"{KEYS}/{key.pk}", {"expires_at": "2027-01-01T00:00:00Z"}, format="json")
    assert response.json()["status"] == "active"


@pytest.mark.parametrize(
    ("payload", "field"),
    [({"name": ""}, "name"), ({"name": "x" * 101}, "name"), ({"expires_at": "2020-01-01T00:00:00Z"}, "expires_at")],
)
def test_editing_a_key_with_an_invalid_field_is_a_400_naming_it(gateway, admin, payload, field):
    key = gateway.api_keys.get()
    response = admin.patch(f"{KEYS}/{key.pk}", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()
    key.refresh_from_db()
    assert key.name == "first"


@pytest.mark.parametrize(
    ("role", "reads", "edits_any_key"),
    [
        (Role.OWNER, 200, 200),
        (Role.ADMIN, 200, 200),
        (Role.DEVELOPER, 200, 403),
        (Role.AUDITOR, 200, 403),
        (Role.VIEWER, 200, 403),
    ],
)
def test_the_role_matrix_for_reading_and_editing_a_key(group, gateway, role, reads, edits_any_key):
    key = gateway.api_keys.get()
    client = api_client_as(member_of(group, role))
    assert client.get(f"{KEYS}/{key.pk}").status_code == reads
    assert client.patch(f"{KEYS}/{key.pk}", {"name": "renamed"}, format="json").status_code == edits_any_key


def test_a_developer_edits_the_keys_they_created(group, gateway):
    developer = member_of(group, Role.DEVELOPER)
    own, _ = api_key_create(gateway=gateway, name="mine", created_by=developer)
    response = api_client_as(developer).patch(f"{KEYS}/{own.pk}", {"name": "still mine"}, format="json")
    assert response.status_code == 200


def test_a_non_member_gets_404_for_a_key_and_sees_none_in_the_list(gateway):
    key = gateway.api_keys.get()
    stranger = api_client_as(MembershipFactory(role=Role.OWNER).user)
    assert stranger.get(f"{KEYS}/{key.pk}").status_code == 404
    assert stranger.patch(f"{KEYS}/{key.pk}", {"name": "mine now"}, format="json").status_code == 404
    assert stranger.get(KEYS).json()["count"] == 0


# Duplicate ----------------------------------------------------------------------------------


def test_duplicating_a_gateway_copies_its_limits_with_a_new_key_and_no_usage(group, gateway, admin):
    token_quota_set(gateway=gateway, limit_tokens=50_000, refresh_period=RefreshPeriod.DAILY)
    spend_budget_create(gateway=gateway, limit_usd=Decimal("25"), refresh_period=RefreshPeriod.WEEKLY)
    rate_limit_set(gateway=gateway, tokens_per_minute=1000, requests_per_minute=None)
    UsageEventFactory(api_key=gateway.api_keys.get(), total_tokens=10, cost_usd=Decimal("0.5"))

    response = admin.post(f"/api/v1/gateways/{gateway.pk}/duplicate", {}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "prod (copy)"
    assert body["resource_group"] == group.pk
    assert body["api_key"]["secret"].startswith("aigw_")
    copy = Gateway.objects.get(pk=body["id"])
    limits = admin.get(f"/api/v1/gateways/{copy.pk}/limits").json()
    assert limits["token_quota"]["limit_tokens"] == 50_000
    assert limits["token_quota"]["used_tokens"] == 0
    assert limits["spend_budget"]["limit_usd"] == "25.0000"
    assert limits["spend_budget"]["refresh_period"] == "weekly"
    assert Decimal(limits["spend_budget"]["current_spend_usd"]) == 0
    assert limits["rate_limit"] == {"tokens_per_minute": 1000, "requests_per_minute": None}


def test_a_duplicate_takes_the_typed_name_and_refuses_a_taken_one(group, gateway, admin):
    named = admin.post(f"/api/v1/gateways/{gateway.pk}/duplicate", {"name": "prod-eu"}, format="json")
    taken = admin.post(f"/api/v1/gateways/{gateway.pk}/duplicate", {"name": "prod"}, format="json")
    assert named.status_code == 201 and named.json()["name"] == "prod-eu"
    assert taken.status_code == 400 and "name" in taken.json()


@pytest.mark.parametrize(
    ("role", "expected"),
    [(Role.OWNER, 201), (Role.ADMIN, 201), (Role.DEVELOPER, 403), (Role.AUDITOR, 403), (Role.VIEWER, 403)],
)
def test_only_owners_and_admins_duplicate(group, gateway, role, expected):
    client = api_client_as(member_of(group, role))
    assert client.post(f"/api/v1/gateways/{gateway.pk}/duplicate", {}, format="json").status_code == expected


def test_a_non_member_gets_404_when_duplicating(gateway):
    stranger = api_client_as(UserFactory())
    assert stranger.post(f"/api/v1/gateways/{gateway.pk}/duplicate", {}, format="json").status_code == 404
