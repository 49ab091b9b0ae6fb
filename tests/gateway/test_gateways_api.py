"""The gateways and API keys management API at /api/v1/ (SPEC §2, §5): create a gateway with its
first key (secret shown once), read, rename, disable and delete it, list, create and revoke its
API keys; 400s name the field; the role matrix (owner, admin, developer, auditor, viewer,
non-member), where another group's gateway is a 404, never a 403."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from rest_framework.test import APIClient

from gateway.models import Gateway, GatewayStatus, Model, Role
from gateway.services import mock_provider_ensure
from gateway.setup import gateway_create
from keys.models import ApiKey, ApiKeyStatus
from keys.services import api_key_create, api_token_create
from keys.tokens import hash_secret
from quotas.models import RateLimit, SpendBudget, TokenQuota
from tests.factories import ResourceGroupFactory, UserFactory
from tests.support.people import api_client_as, member_of

pytestmark = pytest.mark.django_db

GATEWAYS = "/api/v1/gateways"
ALL_ROLES = [Role.OWNER, Role.ADMIN, Role.DEVELOPER, Role.AUDITOR, Role.VIEWER]
MANAGING_ROLES = {Role.OWNER, Role.ADMIN}
KEY_CREATING_ROLES = {Role.OWNER, Role.ADMIN, Role.DEVELOPER}


@pytest.fixture
def gateway(group):
    gateway, _, _ = gateway_create(resource_group=group, name="prod", key_name="first")
    return gateway


def outsider() -> APIClient:
    """A user who is a member (owner even) of another group only."""
    return api_client_as(member_of(ResourceGroupFactory(), Role.OWNER))


@pytest.fixture
def admin(group) -> APIClient:
    return api_client_as(member_of(group, Role.ADMIN))


def gateway_url(gateway) -> str:
    return f"{GATEWAYS}/{gateway.pk}"


def keys_url(gateway) -> str:
    return f"{GATEWAYS}/{gateway.pk}/api-keys"


def revoke_url(api_key) -> str:
    return f"/api/v1/api-keys/{api_key.pk}/revoke"


def create_payload(group, **overrides) -> dict:
    return {"name": "new-gateway", "resource_group": group.pk, **overrides}


# Gateways: create ---------------------------------------------------------------------------


def test_creating_a_gateway_returns_it_with_its_first_key_and_secret_once(admin, group):
    response = admin.post(GATEWAYS, create_payload(group), format="json")

    assert response.status_code == 201
    data = response.json()
    gateway = Gateway.objects.get(pk=data["id"])
    assert (data["name"], data["resource_group"], data["status"]) == ("new-gateway", group.pk, "enabled")
    secret = data["api_key"]["secret"]
    assert secret.startswith("aigw_")
    api_key = ApiKey.objects.get(gateway=gateway)
    assert api_key.hashed_secret == hash_secret(secret)
    assert data["api_key"]["id"] == api_key.pk
    assert data["api_key"]["quotaEntityId"] == f"api_key_id_{api_key.pk}"
    assert data["api_key"]["expires_at"] is None
    # The secret is never shown again.
    assert "secret" not in admin.get(keys_url(gateway)).json()["results"][0]
    assert secret not in admin.get(gateway_url(gateway)).content.decode()


def test_creating_a_gateway_attaches_its_limits_and_key_expiry(admin, group):
    with time_machine.travel(datetime(2026, 3, 1, 12, tzinfo=UTC), tick=False):
        response = admin.post(
            GATEWAYS,
            create_payload(
                group,
                token_quota=1000,
                expires_in="30d",
                spend_budget_usd="10.50",
                spend_budget_refresh_period="monthly",
                tokens_per_minute=5000,
            ),
            format="json",
        )

    assert response.status_code == 201, response.json()
    gateway = Gateway.objects.get(pk=response.json()["id"])
    assert TokenQuota.objects.get(gateway=gateway).limit_tokens == 1000
    budget = SpendBudget.objects.get(gateway=gateway)
    assert (budget.limit_usd, budget.refresh_period) == (Decimal("10.50"), "monthly")
    assert RateLimit.objects.get(gateway=gateway).tokens_per_minute == 5000
    assert ApiKey.objects.get(gateway=gateway).expires_at == datetime(2026, 3, 31, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"resource_group": "abc"}, "resource_group"),
        ({"token_quota": 0}, "token_quota"),
        ({"token_quota": "many"}, "token_quota"),
        ({"expires_in": "14d"}, "expires_in"),
        ({"spend_budget_usd": "0.5"}, "spend_budget_usd"),
        ({"spend_budget_refresh_period": "yearly"}, "spend_budget_refresh_period"),
        ({"tokens_per_minute": -1}, "tokens_per_minute"),
    ],
)
def test_creating_a_gateway_with_an_invalid_field_is_a_400_naming_it(admin, group, overrides, field):
    response = admin.post(GATEWAYS, create_payload(group, **overrides), format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert not Gateway.objects.filter(name="new-gateway").exists()


def test_creating_a_gateway_without_name_or_group_names_both(admin):
    response = admin.post(GATEWAYS, {}, format="json")

    assert response.status_code == 400
    assert set(response.json()) == {"name", "resource_group"}


def test_a_name_taken_by_a_live_gateway_of_the_group_is_a_400(admin, group, gateway):
    response = admin.post(GATEWAYS, create_payload(group, name="prod"), format="json")

    assert response.status_code == 400
    assert "name" in response.json()


def test_a_group_the_user_is_not_a_member_of_is_an_unknown_resource_group(admin):
    other = ResourceGroupFactory()

    response = admin.post(GATEWAYS, create_payload(other), format="json")

    assert response.status_code == 400
    assert "resource_group" in response.json()
    assert not Gateway.objects.filter(resource_group=other).exists()


@pytest.mark.parametrize("role", ALL_ROLES)
def test_only_owners_and_admins_create_gateways(group, role):
    response = api_client_as(member_of(group, role)).post(GATEWAYS, create_payload(group), format="json")

    assert response.status_code == (201 if role in MANAGING_ROLES else 403)


# Gateways: read -----------------------------------------------------------------------------


@pytest.mark.parametrize("role", ALL_ROLES)
def test_every_member_lists_and_reads_the_groups_gateways(group, gateway, role):
    client = api_client_as(member_of(group, role))

    listing = client.get(GATEWAYS)
    detail = client.get(gateway_url(gateway))

    assert listing.status_code == 200
    assert [g["id"] for g in listing.json()["results"]] == [gateway.pk]
    assert detail.status_code == 200
    assert detail.json() == {
        "id": gateway.pk,
        "name": "prod",
        "resource_group": group.pk,
        "status": "enabled",
        "created_at": detail.json()["created_at"],
        "all_models": True,
        "models": [],
    }


def test_a_non_member_lists_nothing_and_gets_404_for_the_gateway(gateway):
    client = outsider()

    assert client.get(GATEWAYS).json()["results"] == []
    response = client.get(gateway_url(gateway))
    assert response.status_code == 404
    assert client.get(f"{GATEWAYS}/999999").json() == response.json()


def test_the_list_is_paginated_with_a_maximum_page_size(admin, group):
    for n in range(3):
        gateway_create(resource_group=group, name=f"gw-{n}")

    first = admin.get(GATEWAYS, {"page_size": 2}).json()
    second = admin.get(first["next"]).json()
    huge = admin.get(GATEWAYS, {"page_size": 10_000})

    assert first["count"] == 3
    assert [g["name"] for g in first["results"]] == ["gw-0", "gw-1"]
    assert [g["name"] for g in second["results"]] == ["gw-2"]
    assert huge.status_code == 200


def test_listing_gateways_takes_a_constant_number_of_queries(admin, group, django_assert_max_num_queries):
    for n in range(10):
        gateway_create(resource_group=group, name=f"gw-{n}")

    with django_assert_max_num_queries(4):
        response = admin.get(GATEWAYS)

    assert len(response.json()["results"]) == 10


def test_unauthenticated_requests_are_401():
    assert APIClient().get(GATEWAYS).status_code == 401


# Gateways: update and delete ----------------------------------------------------------------


def test_patch_renames_and_disables_a_gateway(admin, gateway):
    response = admin.patch(gateway_url(gateway), {"name": "prod-2", "status": "disabled"}, format="json")

    assert response.status_code == 200
    assert (response.json()["name"], response.json()["status"]) == ("prod-2", "disabled")
    gateway.refresh_from_db()
    assert (gateway.name, gateway.status, gateway.serves_requests) == ("prod-2", GatewayStatus.DISABLED, False)


@pytest.mark.parametrize(
    ("payload", "field"),
    [({"status": "provisioning"}, "status"), ({"status": "off"}, "status"), ({"name": ""}, "name")],
)
def test_patch_with_an_invalid_field_is_a_400_naming_it(admin, gateway, payload, field):
    response = admin.patch(gateway_url(gateway), payload, format="json")

    assert response.status_code == 400
    assert field in response.json()


def test_patch_to_a_name_taken_in_the_group_is_a_400(admin, group, gateway):
    gateway_create(resource_group=group, name="staging")

    response = admin.patch(gateway_url(gateway), {"name": "staging"}, format="json")

    assert response.status_code == 400
    assert "name" in response.json()


def test_delete_is_soft_and_the_gateway_is_gone_from_the_api(admin, gateway):
    response = admin.delete(gateway_url(gateway))

    assert response.status_code == 204
    gateway.refresh_from_db()
    assert gateway.deleted_at is not None
    assert not gateway.serves_requests
    assert ApiKey.objects.filter(gateway=gateway).exists()  # kept for usage and audit
    assert admin.get(gateway_url(gateway)).status_code == 404
    assert admin.get(GATEWAYS).json()["results"] == []


def test_a_deleted_gateways_name_can_be_used_again(admin, group, gateway):
    admin.delete(gateway_url(gateway))

    assert admin.post(GATEWAYS, create_payload(group, name="prod"), format="json").status_code == 201


@pytest.mark.parametrize("role", ALL_ROLES)
def test_only_owners_and_admins_change_or_delete_gateways(group, gateway, role):
    client = api_client_as(member_of(group, role))
    expected = {True: (200, 204), False: (403, 403)}[role in MANAGING_ROLES]

    patched = client.patch(gateway_url(gateway), {"status": "disabled"}, format="json")
    deleted = client.delete(gateway_url(gateway))

    assert (patched.status_code, deleted.status_code) == expected


def test_a_non_member_gets_404_when_changing_or_deleting(gateway):
    client = outsider()

    assert client.patch(gateway_url(gateway), {"status": "disabled"}, format="json").status_code == 404
    assert client.delete(gateway_url(gateway)).status_code == 404
    gateway.refresh_from_db()
    assert (gateway.status, gateway.deleted_at) == (GatewayStatus.ENABLED, None)


# API keys -----------------------------------------------------------------------------------


def test_listing_api_keys_shows_their_effective_status_without_secrets(admin, gateway):
    now = datetime(2026, 5, 1, tzinfo=UTC)
    expired, _ = api_key_create(gateway=gateway, name="old", expires_at=now - timedelta(days=1))
    with time_machine.travel(now, tick=False):
        response = admin.get(keys_url(gateway))

    assert response.status_code == 200
    rows = {row["name"]: row for row in response.json()["results"]}
    assert set(rows) == {"first", "old"}
    assert rows["old"] == {
        "id": expired.pk,
        "gateway": gateway.pk,
        "name": "old",
        "prefix": expired.prefix,
        "status": "expired",
        "expires_at": "2026-04-30T00:00:00Z",
        "last_used_at": None,
        "created_at": expired.created_at.isoformat().replace("+00:00", "Z"),
        "quotaEntityId": f"api_key_id_{expired.pk}",
        "spend_budget": None,
    }
    assert rows["first"]["status"] == "active"
    assert all("secret" not in row for row in rows.values())


def test_creating_an_api_key_returns_its_secret_once(admin, gateway):
    response = admin.post(keys_url(gateway), {"name": "ci", "expires_at": "2099-01-01T00:00:00Z"}, format="json")

    assert response.status_code == 201
    data = response.json()
    api_key = ApiKey.objects.get(pk=data["id"])
    assert api_key.hashed_secret == hash_secret(data["secret"])
    assert (data["name"], data["status"], data["expires_at"]) == ("ci", "active", "2099-01-01T00:00:00Z")
    assert api_key.expires_at == datetime(2099, 1, 1, tzinfo=UTC)


def test_an_api_key_without_expiry_has_unlimited_validity(admin, gateway):
    response = admin.post(keys_url(gateway), {"name": "ci"}, format="json")

    assert response.status_code == 201
    assert ApiKey.objects.get(pk=response.json()["id"]).expires_at is None


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "ci", "expires_at": "tomorrow"}, "expires_at"),
        ({"name": "ci", "expires_at": "2000-01-01T00:00:00Z"}, "expires_at"),
    ],
)
def test_creating_an_api_key_with_an_invalid_field_is_a_400_naming_it(admin, gateway, payload, field):
    response = admin.post(keys_url(gateway), payload, format="json")

    assert response.status_code == 400
    assert field in response.json()


@pytest.mark.parametrize("role", ALL_ROLES)
def test_every_member_lists_keys_and_owners_admins_developers_create_them(group, gateway, role):
    client = api_client_as(member_of(group, role))

    listing = client.get(keys_url(gateway))
    created = client.post(keys_url(gateway), {"name": "ci"}, format="json")

    assert listing.status_code == 200
    assert created.status_code == (201 if role in KEY_CREATING_ROLES else 403)


def test_a_non_member_gets_404_for_a_gateways_keys(gateway):
    client = outsider()

    assert client.get(keys_url(gateway)).status_code == 404
    assert client.post(keys_url(gateway), {"name": "ci"}, format="json").status_code == 404
    assert ApiKey.objects.filter(gateway=gateway).count() == 1


def test_revoking_an_api_key_is_immediate_and_idempotent(admin, gateway):
    api_key = gateway.api_keys.get()

    response = admin.post(revoke_url(api_key))
    again = admin.post(revoke_url(api_key))

    assert response.status_code == 200
    assert response.json()["status"] == "revoked"
    assert again.status_code == 200
    api_key.refresh_from_db()
    assert (api_key.status, api_key.revoked_at is not None) == (ApiKeyStatus.REVOKED, True)


@pytest.mark.parametrize("role", ALL_ROLES)
def test_only_owners_and_admins_revoke_any_key(group, gateway, role):
    response = api_client_as(member_of(group, role)).post(revoke_url(gateway.api_keys.get()))

    assert response.status_code == (200 if role in MANAGING_ROLES else 403)


def test_a_developer_revokes_a_key_they_created(group, gateway):
    developer = member_of(group, Role.DEVELOPER)
    api_key, _ = api_key_create(gateway=gateway, name="mine", created_by=developer)

    assert api_client_as(developer).post(revoke_url(api_key)).status_code == 200


def test_a_non_member_gets_404_when_revoking(gateway):
    api_key = gateway.api_keys.get()

    assert outsider().post(revoke_url(api_key)).status_code == 404
    api_key.refresh_from_db()
    assert api_key.status == ApiKeyStatus.ACTIVE


def test_keys_of_a_deleted_gateway_are_gone_from_the_api(admin, gateway):
    api_key = gateway.api_keys.get()
    admin.delete(gateway_url(gateway))

    assert admin.get(keys_url(gateway)).status_code == 404
    assert admin.post(revoke_url(api_key)).status_code == 404


# Personal API tokens ------------------------------------------------------------------------


def test_a_personal_api_token_authenticates_as_its_user(group):
    user = member_of(group, Role.ADMIN)
    _, secret = api_token_create(user=user, name="cli")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")

    response = client.post(GATEWAYS, create_payload(group), format="json")

    assert response.status_code == 201
    assert Gateway.objects.get(pk=response.json()["id"]).created_by == user
    assert [g["name"] for g in client.get(GATEWAYS).json()["results"]] == ["new-gateway"]


def test_a_wrong_personal_api_token_is_401():
    UserFactory()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer aigwp_not-a-real-token")

    assert client.get(GATEWAYS).status_code == 401


def test_rotating_a_key_answers_a_new_secret_once_and_keeps_its_id_and_budget(admin, gateway):
    from quotas.services import spend_budget_create

    api_key = gateway.api_keys.get()
    old_hash = api_key.hashed_secret
    spend_budget_create(api_key=api_key, limit_usd=10)

    response = admin.post(f"/api/v1/api-keys/{api_key.pk}/rotate")

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == api_key.pk and body["quotaEntityId"] == f"api_key_id_{api_key.pk}"
    api_key.refresh_from_db()
    assert api_key.hashed_secret == hash_secret(body["secret"]) != old_hash
    assert body["prefix"] == body["secret"][:12]
    assert SpendBudget.objects.get(api_key=api_key).limit_usd == 10
    assert "secret" not in admin.get(keys_url(gateway)).json()["results"][0]


def test_a_revoked_key_cannot_be_rotated_and_read_only_roles_cannot_rotate(group, gateway, admin):
    api_key = gateway.api_keys.get()
    auditor = api_client_as(member_of(group, Role.AUDITOR))
    assert auditor.post(f"/api/v1/api-keys/{api_key.pk}/rotate").status_code == 403
    assert outsider().post(f"/api/v1/api-keys/{api_key.pk}/rotate").status_code == 404
    admin.post(revoke_url(api_key))
    response = admin.post(f"/api/v1/api-keys/{api_key.pk}/rotate")
    assert response.status_code == 400
    assert "revoked" in str(response.json())


# A gateway's models (SPEC §1: an explicit list, or explicitly all models) --------------------


@pytest.fixture
def catalog():
    """The built-in mock models `mock/echo` and `mock/large`."""
    mock_provider_ensure()
    return {model.name: model for model in Model.objects.all()}


def test_a_gateway_shows_its_models_sorted_or_that_it_serves_all(admin, group, catalog):
    listed, _, _ = gateway_create(
        resource_group=group, name="listed", allowed_models=[catalog["mock/large"], catalog["mock/echo"]]
    )
    every, _, _ = gateway_create(resource_group=group, name="every", all_models=True)

    detail = admin.get(gateway_url(listed)).json()
    assert (detail["all_models"], detail["models"]) == (False, ["mock/echo", "mock/large"])
    assert {(g["name"], g["all_models"], tuple(g["models"])) for g in admin.get(GATEWAYS).json()["results"]} == {
        ("listed", False, ("mock/echo", "mock/large")),
        ("every", True, ()),
    }


def test_creating_a_gateway_with_models_serves_exactly_those(admin, group, catalog):
    response = admin.post(GATEWAYS, create_payload(group, models=["mock/echo"]), format="json")

    assert response.status_code == 201
    assert (response.json()["all_models"], response.json()["models"]) == (False, ["mock/echo"])
    gateway = Gateway.objects.get(pk=response.json()["id"])
    assert [m.name for m in gateway.allowed_models.all()] == ["mock/echo"] and not gateway.all_models


def test_creating_a_gateway_without_models_serves_all_models_as_before(admin, group, catalog):
    response = admin.post(GATEWAYS, create_payload(group), format="json")

    assert (response.json()["all_models"], response.json()["models"]) == (True, [])


def test_an_unknown_model_name_is_a_400_naming_models_and_nothing_changes(admin, group, gateway, catalog):
    created = admin.post(GATEWAYS, create_payload(group, name="new", models=["mock/echo", "gpt-9"]), format="json")
    patched = admin.patch(gateway_url(gateway), {"models": ["no-such-model"]}, format="json")

    assert created.status_code == 400 and "gpt-9" in created.json()["models"][0]
    assert patched.status_code == 400 and "no-such-model" in patched.json()["models"][0]
    assert not Gateway.objects.filter(name="new").exists()
    gateway.refresh_from_db()
    assert gateway.all_models and not gateway.allowed_models.exists()


def test_models_and_all_models_true_together_are_a_400_naming_models(admin, gateway, catalog):
    response = admin.patch(gateway_url(gateway), {"all_models": True, "models": ["mock/echo"]}, format="json")

    assert response.status_code == 400 and "models" in response.json()


def test_patch_models_alone_narrows_a_gateway_that_served_all_models(admin, gateway, catalog):
    response = admin.patch(gateway_url(gateway), {"models": ["mock/large", "mock/echo"]}, format="json")

    assert response.status_code == 200
    assert (response.json()["all_models"], response.json()["models"]) == (False, ["mock/echo", "mock/large"])


def test_patch_all_models_true_serves_every_model(admin, group, catalog):
    gateway, _, _ = gateway_create(resource_group=group, name="narrow", allowed_models=[catalog["mock/echo"]])

    response = admin.patch(gateway_url(gateway), {"all_models": True}, format="json")

    assert (response.json()["all_models"], response.json()["models"]) == (True, [])


def test_removing_the_last_model_leaves_the_gateway_serving_none_never_all(admin, group, catalog):
    gateway, _, _ = gateway_create(resource_group=group, name="narrow", allowed_models=[catalog["mock/echo"]])

    response = admin.patch(gateway_url(gateway), {"models": []}, format="json")

    assert response.status_code == 200
    assert (response.json()["all_models"], response.json()["models"]) == (False, [])
    gateway.refresh_from_db()
    assert not gateway.all_models and not gateway.allowed_models.exists()


def test_all_models_false_alone_keeps_the_list_and_never_widens(admin, group, catalog):
    listed, _, _ = gateway_create(resource_group=group, name="listed", allowed_models=[catalog["mock/echo"]])
    every, _, _ = gateway_create(resource_group=group, name="every", all_models=True)

    kept = admin.patch(gateway_url(listed), {"all_models": False}, format="json").json()
    ended = admin.patch(gateway_url(every), {"all_models": False}, format="json").json()
    renamed = admin.patch(gateway_url(listed), {"name": "listed-2"}, format="json").json()

    assert (kept["all_models"], kept["models"]) == (False, ["mock/echo"])
    assert (ended["all_models"], ended["models"]) == (False, [])  # all ends: none, until some are chosen
    assert (renamed["all_models"], renamed["models"]) == (False, ["mock/echo"])


@pytest.mark.parametrize("role", [Role.DEVELOPER, Role.AUDITOR, Role.VIEWER])
def test_only_owners_and_admins_choose_a_gateways_models(group, gateway, catalog, role):
    response = api_client_as(member_of(group, role)).patch(
        gateway_url(gateway), {"models": ["mock/echo"]}, format="json"
    )

    assert response.status_code == 403
    gateway.refresh_from_db()
    assert gateway.all_models


def test_a_status_the_service_refuses_is_a_400_naming_status(admin, gateway):
    response = admin.patch(gateway_url(gateway), {"status": "provisioning"}, format="json")

    assert response.status_code == 400 and list(response.json()) == ["status"]
    gateway.refresh_from_db()
    assert gateway.status == GatewayStatus.ENABLED
