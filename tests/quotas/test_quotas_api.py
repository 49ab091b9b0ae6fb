"""The Vercel-compatible quotas API at /api/v1/quotas (SPEC §5): Vercel's shapes and statuses,
the spend of the current window from the usage events, archive and restore, the role matrix
(owner/admin write; developer/auditor/viewer read; non-members see nothing), and 400s that name
the field."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine
from rest_framework.test import APIClient

from gateway.models import Role
from gateway.setup import gateway_create
from quotas.models import LimitMode, RefreshPeriod, SpendBudget
from quotas.services import spend_budget_archive, spend_budget_create
from tests.factories import MembershipFactory, UsageEventFactory, UserFactory
from tests.support.people import api_client_as, member_of
from usage.models import UsageEvent

pytestmark = pytest.mark.django_db

URL = "/api/v1/quotas"
READ_ONLY_ROLES = [Role.DEVELOPER, Role.AUDITOR, Role.VIEWER]
MANAGING_ROLES = [Role.OWNER, Role.ADMIN]


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """UserFactory hashes a password for every member; PBKDF2 would take most of the run."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def api_key(group):
    _, api_key, _ = gateway_create(resource_group=group, name="prod", key_name="my-api-key")
    return api_key


@pytest.fixture
def admin(group) -> APIClient:
    return api_client_as(member_of(group, Role.ADMIN))


def entity(api_key) -> str:
    return f"api_key_id_{api_key.pk}"


def query(api_key_or_entity) -> str:
    value = api_key_or_entity if isinstance(api_key_or_entity, str) else entity(api_key_or_entity)
    return f"{URL}?quotaEntityId={value}"


def body(response) -> dict:
    """The JSON body with numbers read as Decimal, so amounts compare exactly."""
    return json.loads(response.content, parse_float=Decimal)


def post(client, payload):
    return client.post(URL, payload, format="json")


def patch(client, api_key, payload):
    return client.patch(query(api_key), payload, format="json")


def usage_event(api_key, at: datetime, cost: str) -> UsageEvent:
    return UsageEventFactory(api_key=api_key, created_at=at, total_tokens=10, cost_usd=Decimal(cost))


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


# GET ------------------------------------------------------------------------------------------


def test_get_returns_the_budget_in_vercels_shape(admin, api_key):
    spend_budget_create(api_key=api_key, limit_usd=10, refresh_period=RefreshPeriod.MONTHLY)

    response = admin.get(query(api_key))

    assert response.status_code == 200
    assert body(response) == {
        "quotaEntityId": entity(api_key),
        "apiKeyName": "my-api-key",
        "limitAmount": 10,
        "currentSpend": 0,
        "refreshPeriod": "monthly",
        "active": True,
    }


def test_amounts_are_json_numbers_not_strings(admin, api_key):
    spend_budget_create(api_key=api_key, limit_usd="12.5")
    usage_event(api_key, utc(2026, 1, 1), "1.04")

    response = admin.get(query(api_key))

    assert b'"limitAmount":12.5' in response.content
    assert b'"currentSpend":1.04' in response.content
    assert (body(response)["limitAmount"], body(response)["currentSpend"]) == (Decimal("12.5"), Decimal("1.04"))


def test_get_answers_404_quota_not_found_for_a_key_without_a_budget(admin, api_key):
    response = admin.get(query(api_key))

    assert response.status_code == 404
    assert response.json() == {"error": "Quota not found"}


def test_get_answers_404_for_a_removed_budget(admin, api_key):
    spend_budget_archive(budget=spend_budget_create(api_key=api_key, limit_usd=10))

    response = admin.get(query(api_key))

    assert response.status_code == 404
    assert response.json() == {"error": "Quota not found"}


def test_get_answers_404_for_a_key_id_that_does_not_exist(admin, api_key):
    response = admin.get(query(f"api_key_id_{api_key.pk + 1000}"))

    assert response.status_code == 404
    assert response.json() == {"error": "Quota not found"}


def test_get_answers_404_for_a_key_id_beyond_the_database_range(admin):
    response = admin.get(query("api_key_id_" + "9" * 25))

    assert response.status_code == 404
    assert response.json() == {"error": "Quota not found"}


def test_get_reads_the_roles_then_the_key_and_its_budget_in_one_query_and_the_spend_in_another(
    admin, api_key, django_assert_num_queries
):
    spend_budget_create(api_key=api_key, limit_usd=10)

    with django_assert_num_queries(3):  # the user's roles (once per request), the key, its spend
        response = admin.get(query(api_key))

    assert response.status_code == 200


# currentSpend -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("refresh_period", "before_window", "in_window"),
    [
        # now is Wednesday 2026-03-18 15:00 UTC
        (RefreshPeriod.DAILY, utc(2026, 3, 17, 23, 59, 59), utc(2026, 3, 18, 0, 0, 0)),
        (RefreshPeriod.WEEKLY, utc(2026, 3, 15, 23, 59, 59), utc(2026, 3, 16, 0, 0, 0)),
        (RefreshPeriod.MONTHLY, utc(2026, 2, 28, 23, 59, 59), utc(2026, 3, 1, 0, 0, 0)),
    ],
)
def test_current_spend_is_the_exact_cost_of_the_keys_usage_events_in_the_current_window(
    admin, api_key, refresh_period, before_window, in_window
):
    spend_budget_create(api_key=api_key, limit_usd=100, refresh_period=refresh_period)
    usage_event(api_key, before_window, "7.5")  # previous window: does not count
    usage_event(api_key, in_window, "0.0000000001")  # the window's first instant counts
    usage_event(api_key, utc(2026, 3, 18, 14, 59), "1.0399999999")
    usage_event(api_key, utc(2026, 3, 18, 14, 59, 30), "0.3333333333")
    _, other_key, _ = gateway_create(resource_group=api_key.gateway.resource_group, name="other")
    usage_event(other_key, utc(2026, 3, 18, 14, 0), "5")  # another key: does not count

    with time_machine.travel(utc(2026, 3, 18, 15, 0), tick=False):
        response = admin.get(query(api_key))

    assert response.status_code == 200
    assert body(response)["currentSpend"] == Decimal("0.0000000001") + Decimal("1.0399999999") + Decimal("0.3333333333")


def test_current_spend_of_a_budget_that_never_refreshes_counts_every_event(admin, api_key):
    spend_budget_create(api_key=api_key, limit_usd=100)
    usage_event(api_key, utc(2019, 1, 1), "2.25")
    usage_event(api_key, utc(2026, 3, 18, 14, 0), "1.5")

    with time_machine.travel(utc(2026, 3, 18, 15, 0), tick=False):
        response = admin.get(query(api_key))

    assert body(response)["currentSpend"] == Decimal("3.75")


def test_current_spend_starts_again_from_zero_when_the_window_rolls_over(admin, api_key):
    spend_budget_create(api_key=api_key, limit_usd=10, refresh_period=RefreshPeriod.DAILY)
    usage_event(api_key, utc(2026, 3, 18, 23, 59, 59), "4")

    with time_machine.travel(utc(2026, 3, 18, 23, 59, 59), tick=False):
        assert body(admin.get(query(api_key)))["currentSpend"] == Decimal(4)
    with time_machine.travel(utc(2026, 3, 19, 0, 0, 0), tick=False):
        assert body(admin.get(query(api_key)))["currentSpend"] == Decimal(0)


# POST -----------------------------------------------------------------------------------------


def test_post_creates_a_budget_and_answers_201_with_the_quota(admin, api_key):
    response = post(admin, {"quotaEntityId": entity(api_key), "limitAmount": 50, "refreshPeriod": "weekly"})

    assert response.status_code == 201
    assert body(response) == {
        "quotaEntityId": entity(api_key),
        "apiKeyName": "my-api-key",
        "limitAmount": 50,
        "currentSpend": 0,
        "refreshPeriod": "weekly",
        "active": True,
    }
    budget = SpendBudget.objects.get(api_key=api_key)
    assert (budget.limit_usd, budget.refresh_period, budget.mode, budget.enforced) == (
        Decimal(50),
        RefreshPeriod.WEEKLY,
        LimitMode.SOFT,
        True,
    )
    assert admin.get(query(api_key)).json() == response.json()


def test_post_without_a_refresh_period_creates_a_soft_budget_that_never_refreshes(admin, api_key):
    response = post(admin, {"quotaEntityId": entity(api_key), "limitAmount": 10})

    assert response.status_code == 201
    assert body(response)["refreshPeriod"] == "none"
    assert SpendBudget.objects.get(api_key=api_key).mode == LimitMode.SOFT


def test_post_can_create_a_hard_budget(admin, api_key):
    response = post(admin, {"quotaEntityId": entity(api_key), "limitAmount": 10, "mode": "hard"})

    assert response.status_code == 201
    assert SpendBudget.objects.get(api_key=api_key).mode == LimitMode.HARD


def test_post_stores_a_limit_with_cents_exactly(admin, api_key):
    response = post(admin, {"quotaEntityId": entity(api_key), "limitAmount": 10.1})

    assert body(response)["limitAmount"] == Decimal("10.1")
    assert SpendBudget.objects.get(api_key=api_key).limit_usd == Decimal("10.1000")


def test_post_reports_the_spend_the_key_already_has_in_the_window(admin, api_key):
    usage_event(api_key, utc(2026, 3, 18, 9, 0), "2.5")

    with time_machine.travel(utc(2026, 3, 18, 15, 0), tick=False):
        response = post(admin, {"quotaEntityId": entity(api_key), "limitAmount": 10, "refreshPeriod": "daily"})

    assert body(response)["currentSpend"] == Decimal("2.5")


def test_post_answers_409_when_the_key_already_has_a_budget(admin, api_key):
    spend_budget_create(api_key=api_key, limit_usd=10)

    response = post(admin, {"quotaEntityId": entity(api_key), "limitAmount": 20})

    assert response.status_code == 409
    assert set(response.json()) == {"error"}
    assert SpendBudget.objects.get(api_key=api_key).limit_usd == Decimal(10)


def test_post_answers_409_when_the_keys_budget_was_removed_because_it_is_restored_with_patch(admin, api_key):
    spend_budget_archive(budget=spend_budget_create(api_key=api_key, limit_usd=10))

    response = post(admin, {"quotaEntityId": entity(api_key), "limitAmount": 20})

    assert response.status_code == 409
    assert "PATCH" in response.json()["error"]
    assert SpendBudget.objects.get(api_key=api_key).archived_at is not None


def test_post_answers_404_api_key_not_found_for_a_key_that_does_not_exist(admin, api_key):
    response = post(admin, {"quotaEntityId": f"api_key_id_{api_key.pk + 1000}", "limitAmount": 10})

    assert response.status_code == 404
    assert response.json() == {"error": "API key not found"}


# PATCH ----------------------------------------------------------------------------------------


def test_patch_changes_only_the_fields_sent(admin, api_key):
    spend_budget_create(api_key=api_key, limit_usd=10, refresh_period=RefreshPeriod.WEEKLY)

    response = patch(admin, api_key, {"limitAmount": 100})

    assert response.status_code == 200
    assert body(response) == {
        "quotaEntityId": entity(api_key),
        "apiKeyName": "my-api-key",
        "limitAmount": 100,
        "currentSpend": 0,
        "refreshPeriod": "weekly",
        "active": True,
    }
    budget = SpendBudget.objects.get(api_key=api_key)
    assert (budget.limit_usd, budget.refresh_period) == (Decimal(100), RefreshPeriod.WEEKLY)


def test_patch_changes_the_limit_and_the_refresh_period_together(admin, api_key):
    spend_budget_create(api_key=api_key, limit_usd=10, refresh_period=RefreshPeriod.WEEKLY)

    response = patch(admin, api_key, {"limitAmount": 100, "refreshPeriod": "monthly"})

    assert response.status_code == 200
    assert (body(response)["limitAmount"], body(response)["refreshPeriod"]) == (100, "monthly")


def test_patch_turns_enforcement_off_and_on(admin, api_key):
    spend_budget_create(api_key=api_key, limit_usd=10)

    off = patch(admin, api_key, {"active": False})
    assert off.status_code == 200
    assert off.json()["active"] is False
    assert SpendBudget.objects.get(api_key=api_key).enforced is False

    on = patch(admin, api_key, {"active": True})
    assert on.json()["active"] is True
    assert SpendBudget.objects.get(api_key=api_key).enforced is True


def test_patch_switches_the_mode(admin, api_key):
    spend_budget_create(api_key=api_key, limit_usd=10)

    response = patch(admin, api_key, {"mode": "hard"})

    assert response.status_code == 200
    assert SpendBudget.objects.get(api_key=api_key).mode == LimitMode.HARD


def test_patch_with_an_empty_body_changes_nothing_and_answers_the_quota(admin, api_key):
    spend_budget_create(api_key=api_key, limit_usd=10)

    response = patch(admin, api_key, {})

    assert response.status_code == 200
    assert body(response)["limitAmount"] == 10


def test_patch_answers_404_for_a_key_without_a_budget(admin, api_key):
    response = patch(admin, api_key, {"limitAmount": 10})

    assert response.status_code == 404
    assert response.json() == {"error": "Quota not found"}
    assert not SpendBudget.objects.filter(api_key=api_key).exists()


def test_patch_restores_a_removed_budget(admin, api_key):
    spend_budget_create(api_key=api_key, limit_usd=10, refresh_period=RefreshPeriod.MONTHLY)
    assert admin.delete(query(api_key)).status_code == 200
    assert admin.get(query(api_key)).status_code == 404

    response = patch(admin, api_key, {"archived": False, "active": True, "limitAmount": 50})

    assert response.status_code == 200
    assert body(response) == {
        "quotaEntityId": entity(api_key),
        "apiKeyName": "my-api-key",
        "limitAmount": 50,
        "currentSpend": 0,
        "refreshPeriod": "monthly",
        "active": True,
    }
    budget = SpendBudget.objects.get(api_key=api_key)
    assert budget.archived_at is None and budget.enforced
    assert admin.get(query(api_key)).json() == response.json()


def test_patch_does_not_edit_a_removed_budget_unless_it_restores_it(admin, api_key):
    spend_budget_archive(budget=spend_budget_create(api_key=api_key, limit_usd=10))

    response = patch(admin, api_key, {"limitAmount": 50})

    assert response.status_code == 404
    assert response.json() == {"error": "Quota not found"}
    budget = SpendBudget.objects.get(api_key=api_key)
    assert (budget.limit_usd, budget.archived_at is not None) == (Decimal(10), True)


def test_patch_with_archived_true_removes_the_budget(admin, api_key):
    spend_budget_create(api_key=api_key, limit_usd=10)

    response = patch(admin, api_key, {"archived": True})

    assert response.status_code == 200
    assert response.json() == {"quotaEntityId": entity(api_key), "archived": True}
    assert admin.get(query(api_key)).status_code == 404


def test_patch_rejects_a_body_quota_entity_id_that_differs_from_the_query_string(admin, api_key):
    spend_budget_create(api_key=api_key, limit_usd=10)

    response = patch(admin, api_key, {"quotaEntityId": "api_key_id_999999", "limitAmount": 50})

    assert response.status_code == 400
    assert response.json()["field"] == "quotaEntityId"
    assert SpendBudget.objects.get(api_key=api_key).limit_usd == Decimal(10)


def test_a_rejected_patch_leaves_the_budget_as_it_was(admin, api_key):
    spend_budget_create(api_key=api_key, limit_usd=10, refresh_period=RefreshPeriod.DAILY)

    response = patch(admin, api_key, {"limitAmount": 50, "refreshPeriod": "yearly"})

    assert response.status_code == 400
    budget = SpendBudget.objects.get(api_key=api_key)
    assert (budget.limit_usd, budget.refresh_period) == (Decimal(10), RefreshPeriod.DAILY)


# DELETE ---------------------------------------------------------------------------------------


def test_delete_archives_the_budget_so_the_key_is_unlimited_and_get_answers_404(admin, api_key):
    spend_budget_create(api_key=api_key, limit_usd=10)

    response = admin.delete(query(api_key))

    assert response.status_code == 200
    assert response.json() == {"quotaEntityId": entity(api_key), "archived": True}
    budget = SpendBudget.objects.get(api_key=api_key)  # kept, so it can be restored
    assert budget.archived_at is not None and not budget.enforced
    get = admin.get(query(api_key))
    assert get.status_code == 404
    assert get.json() == {"error": "Quota not found"}


def test_delete_answers_404_for_a_key_without_a_budget(admin, api_key):
    response = admin.delete(query(api_key))

    assert response.status_code == 404
    assert response.json() == {"error": "Quota not found"}


def test_delete_answers_404_for_a_budget_removed_already(admin, api_key):
    spend_budget_archive(budget=spend_budget_create(api_key=api_key, limit_usd=10))

    response = admin.delete(query(api_key))

    assert response.status_code == 404
    assert response.json() == {"error": "Quota not found"}


# Roles ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", MANAGING_ROLES + READ_ONLY_ROLES)
def test_every_member_of_the_keys_resource_group_may_read_its_quota(group, api_key, role):
    spend_budget_create(api_key=api_key, limit_usd=10)

    response = api_client_as(member_of(group, role)).get(query(api_key))

    assert response.status_code == 200
    assert response.json()["quotaEntityId"] == entity(api_key)


@pytest.mark.parametrize("role", MANAGING_ROLES)
def test_owners_and_admins_may_create_change_remove_and_restore_a_budget(group, api_key, role):
    client = api_client_as(member_of(group, role))

    assert post(client, {"quotaEntityId": entity(api_key), "limitAmount": 10}).status_code == 201
    assert patch(client, api_key, {"limitAmount": 20}).status_code == 200
    assert client.delete(query(api_key)).status_code == 200
    assert patch(client, api_key, {"archived": False, "active": True}).status_code == 200
    assert SpendBudget.objects.get(api_key=api_key).enforced


@pytest.mark.parametrize("role", READ_ONLY_ROLES)
def test_developers_auditors_and_viewers_get_403_on_every_write(group, api_key, role):
    client = api_client_as(member_of(group, role))
    other_key = gateway_create(resource_group=group, name="other")[1]
    spend_budget_create(api_key=api_key, limit_usd=10)

    responses = [
        post(client, {"quotaEntityId": entity(other_key), "limitAmount": 10}),
        patch(client, api_key, {"limitAmount": 20}),
        client.delete(query(api_key)),
    ]

    assert [r.status_code for r in responses] == [403, 403, 403]
    assert all(set(r.json()) == {"error"} for r in responses)
    assert not SpendBudget.objects.filter(api_key=other_key).exists()
    budget = SpendBudget.objects.get(api_key=api_key)
    assert (budget.limit_usd, budget.archived_at) == (Decimal(10), None)


@pytest.mark.parametrize("role", READ_ONLY_ROLES)
def test_a_read_only_member_cannot_restore_a_removed_budget(group, api_key, role):
    spend_budget_archive(budget=spend_budget_create(api_key=api_key, limit_usd=10))

    response = patch(api_client_as(member_of(group, role)), api_key, {"archived": False})

    assert response.status_code == 403
    assert SpendBudget.objects.get(api_key=api_key).archived_at is not None


@pytest.mark.parametrize("outsider_role", [None, Role.OWNER])
def test_a_user_outside_the_keys_resource_group_gets_404_for_everything_like_for_a_missing_key(api_key, outsider_role):
    """None: a user with no membership at all; owner: the owner of another resource group."""
    outsider = UserFactory()
    if outsider_role:
        MembershipFactory(user=outsider, role=outsider_role)  # a group of their own
    client = api_client_as(outsider)
    spend_budget_create(api_key=api_key, limit_usd=10)
    _, unbudgeted_key, _ = gateway_create(resource_group=api_key.gateway.resource_group, name="other")

    responses = {
        "get": client.get(query(api_key)),
        "post": post(client, {"quotaEntityId": entity(unbudgeted_key), "limitAmount": 10}),
        "patch": patch(client, api_key, {"limitAmount": 20}),
        "delete": client.delete(query(api_key)),
    }

    assert {method: r.status_code for method, r in responses.items()} == {
        "get": 404,
        "post": 404,
        "patch": 404,
        "delete": 404,
    }
    missing = f"api_key_id_{unbudgeted_key.pk + 1000}"
    assert responses["get"].json() == client.get(query(missing)).json() == {"error": "Quota not found"}
    assert responses["post"].json() == post(client, {"quotaEntityId": missing, "limitAmount": 10}).json()
    assert not SpendBudget.objects.filter(api_key=unbudgeted_key).exists()
    budget = SpendBudget.objects.get(api_key=api_key)
    assert (budget.limit_usd, budget.archived_at) == (Decimal(10), None)


def test_a_superuser_may_manage_any_keys_budget(api_key):
    client = api_client_as(UserFactory(is_superuser=True))

    assert post(client, {"quotaEntityId": entity(api_key), "limitAmount": 10}).status_code == 201
    assert client.get(query(api_key)).status_code == 200


def test_the_budget_of_a_key_on_a_deleted_gateway_is_not_found(admin, api_key):
    from django.utils import timezone

    spend_budget_create(api_key=api_key, limit_usd=10)
    api_key.gateway.deleted_at = timezone.now()
    api_key.gateway.save(update_fields=["deleted_at"])

    assert admin.get(query(api_key)).status_code == 404


@pytest.mark.parametrize("method", ["get", "post", "patch", "delete"])
def test_a_caller_who_is_not_signed_in_is_refused_for_every_method(api_key, method):
    spend_budget_create(api_key=api_key, limit_usd=10)

    response = getattr(APIClient(), method)(query(api_key), {"limitAmount": 20}, format="json")

    assert response.status_code in (401, 403)
    assert set(response.json()) == {"error"}
    assert SpendBudget.objects.get(api_key=api_key).limit_usd == Decimal(10)


def test_a_console_session_works_like_a_forced_login(group, api_key):
    spend_budget_create(api_key=api_key, limit_usd=10)
    client = APIClient()
    client.force_login(member_of(group, Role.VIEWER))

    assert client.get(query(api_key)).status_code == 200


# Validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"limitAmount": 0.99}, "limitAmount", "limitAmount must be at least 1 USD."),
        ({"limitAmount": 0}, "limitAmount", "limitAmount must be at least 1 USD."),
        ({"limitAmount": -5}, "limitAmount", "limitAmount must be at least 1 USD."),
        ({"limitAmount": "10"}, "limitAmount", "limitAmount must be a number"),
        ({"limitAmount": "ten"}, "limitAmount", "limitAmount must be a number"),
        ({"limitAmount": True}, "limitAmount", "limitAmount must be a number"),
        ({"limitAmount": None}, "limitAmount", "limitAmount may not be null."),
        ({"limitAmount": [10]}, "limitAmount", "limitAmount must be a number"),
        ({}, "limitAmount", "limitAmount is required."),
        ({"limitAmount": 1.00001}, "limitAmount", "limitAmount may have at most 4 decimal places"),
        ({"limitAmount": 1e11}, "limitAmount", "limitAmount must be less than 10000000000"),
        ({"limitAmount": 10, "refreshPeriod": "yearly"}, "refreshPeriod", None),
        ({"limitAmount": 10, "refreshPeriod": ""}, "refreshPeriod", None),
        ({"limitAmount": 10, "refreshPeriod": 7}, "refreshPeriod", "refreshPeriod must be a string"),
        ({"limitAmount": 10, "mode": "firm"}, "mode", None),
        ({"limitAmount": 10, "active": "true"}, "active", "active must be true or false"),
        ({"limitAmount": 10, "active": 1}, "active", "active must be true or false"),
    ],
)
def test_post_rejects_an_invalid_field_with_400_naming_it(admin, api_key, payload, field, message):
    response = post(admin, {"quotaEntityId": entity(api_key), **payload})

    assert response.status_code == 400
    data = response.json()
    assert set(data) == {"error", "field"}
    assert data["field"] == field
    assert data["error"].startswith(field)
    if message:
        assert data["error"] == message
    assert not SpendBudget.objects.filter(api_key=api_key).exists()


def test_an_unknown_refresh_period_is_rejected_with_the_allowed_ones(admin, api_key):
    response = post(admin, {"quotaEntityId": entity(api_key), "limitAmount": 10, "refreshPeriod": "yearly"})

    assert response.json() == {
        "error": "refreshPeriod must be one of none, daily, weekly, monthly, not 'yearly'.",
        "field": "refreshPeriod",
    }


def test_a_limit_of_exactly_one_dollar_is_accepted(admin, api_key):
    response = post(admin, {"quotaEntityId": entity(api_key), "limitAmount": 1})

    assert response.status_code == 201


@pytest.mark.parametrize(
    "quota_entity_id",
    [
        None,
        "",
        "abc",
        "api_key_id_",
        "api_key_id_abc",
        "api_key_id_007",
        "api_key_id_0",
        "api_key_id_1 ",
        42,
        "gateway_id_1",
        "api_key_id_١",
    ],
)
def test_post_rejects_a_missing_or_malformed_quota_entity_id_with_400(admin, quota_entity_id):
    payload = {"limitAmount": 10}
    if quota_entity_id is not None:
        payload["quotaEntityId"] = quota_entity_id

    response = post(admin, payload)

    assert response.status_code == 400
    assert response.json()["field"] == "quotaEntityId"
    assert response.json()["error"].startswith("quotaEntityId ")


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
@pytest.mark.parametrize("quota_entity_id", [None, "", "42", "api_key_id_x"])
def test_a_missing_or_malformed_quota_entity_id_in_the_query_string_is_400(admin, method, quota_entity_id):
    url = URL if quota_entity_id is None else query(quota_entity_id)

    response = getattr(admin, method)(url, {}, format="json")

    assert response.status_code == 400
    assert response.json()["field"] == "quotaEntityId"


def test_a_missing_quota_entity_id_says_it_is_required(admin):
    assert admin.get(URL).json() == {"error": "quotaEntityId is required", "field": "quotaEntityId"}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"limitAmount": 0.5}, "limitAmount"),
        ({"limitAmount": "50"}, "limitAmount"),
        ({"limitAmount": None}, "limitAmount"),
        ({"refreshPeriod": "hourly"}, "refreshPeriod"),
        ({"mode": "firm"}, "mode"),
        ({"active": "yes"}, "active"),
        ({"active": None}, "active"),
        ({"archived": 1}, "archived"),
        ({"archived": "false"}, "archived"),
    ],
)
def test_patch_rejects_an_invalid_field_with_400_naming_it(admin, api_key, payload, field):
    spend_budget_create(api_key=api_key, limit_usd=10)

    response = patch(admin, api_key, payload)

    assert response.status_code == 400
    assert response.json()["field"] == field
    assert response.json()["error"].startswith(field)


def test_malformed_json_is_400_in_the_same_shape(admin):
    response = admin.post(URL, b'{"quotaEntityId": ', content_type="application/json")

    assert response.status_code == 400
    assert response.json()["field"] is None
    assert response.json()["error"].startswith("JSON parse error")


def test_nan_is_not_a_limit(admin, api_key):
    response = admin.post(
        URL, f'{{"quotaEntityId": "{entity(api_key)}", "limitAmount": NaN}}', content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json()["field"] is None


def test_a_body_that_is_not_a_json_object_is_400(admin, api_key):
    response = post(admin, [{"quotaEntityId": entity(api_key), "limitAmount": 10}])

    assert response.status_code == 400
    assert response.json() == {"error": "The body must be a JSON object", "field": None}


def test_a_form_encoded_body_is_refused_with_415(admin, api_key):
    response = admin.post(URL, {"quotaEntityId": entity(api_key), "limitAmount": "10"})

    assert response.status_code == 415
    assert set(response.json()) == {"error"}
