"""One FilterSet for API key lists (`keys.filters.ApiKeyFilterSet`): the console's API keys page
and `GET /api/v1/api-keys` filter the same way, by gateway, resource group, effective status and
name or prefix; the API answers a bad filter with a 400 naming it, the page ignores it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from gateway.models import Role
from gateway.setup import gateway_create
from keys.filters import ApiKeyFilterSet
from keys.models import ApiKey
from keys.selectors import api_keys_for
from keys.services import api_key_create, api_key_revoke
from tests.factories import MembershipFactory, ResourceGroupFactory
from tests.support.people import api_client_as, member_of

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def setup(client):
    """An auditor of `support` (prod, staging) and `research` (lab), and a group they are not in."""
    support, research = ResourceGroupFactory(name="support"), ResourceGroupFactory(name="research")
    user = member_of(support, Role.AUDITOR)
    MembershipFactory(user=user, resource_group=research, role=Role.AUDITOR)
    with time_machine.travel(NOW - timedelta(days=10), tick=False):
        prod, _, _ = gateway_create(resource_group=support, name="prod", key_name="prod first")
        staging, _, _ = gateway_create(resource_group=support, name="staging", key_name="staging first")
        gateway_create(resource_group=research, name="lab", key_name="lab first")
        gateway_create(resource_group=ResourceGroupFactory(), name="elsewhere", key_name="not yours")
        api_key_create(gateway=prod, name="past expiry", expires_at=NOW - timedelta(days=1))
        api_key_revoke(api_key=api_key_create(gateway=staging, name="gone")[0])
    client.force_login(user)
    api = api_client_as(user)
    return {"client": client, "api": api, "prod": prod, "support": support, "user": user}


def api_names(setup, params: dict) -> set[str]:
    return {key["name"] for key in setup["api"].get("/api/v1/api-keys", params).json()["results"]}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, {"prod first", "staging first", "lab first", "past expiry", "gone"}),
        ({"gateway": "PROD"}, {"prod first", "past expiry"}),
        ({"resource_group": "SUPPORT"}, {"prod first", "staging first", "past expiry", "gone"}),
        ({"status": "expired"}, {"past expiry"}),
        ({"status": "active"}, {"prod first", "staging first", "lab first"}),
        ({"status": "revoked"}, {"gone"}),
        ({"q": "first"}, {"prod first", "staging first", "lab first"}),
        ({"resource_group": "SUPPORT", "status": "active"}, {"prod first", "staging first"}),
    ],
)
def test_the_api_and_the_filterset_list_the_same_keys(setup, params, expected):
    params = {
        name: str({"PROD": setup["prod"].pk, "SUPPORT": setup["support"].pk}.get(value, value))
        for name, value in params.items()
    }
    with time_machine.travel(NOW, tick=False):
        from_api = api_names(setup, params)
        filters = ApiKeyFilterSet(params, queryset=api_keys_for(setup["user"]))
        assert filters.is_valid()
        from_filterset = {key.name for key in filters.qs}

    assert from_api == from_filterset == expected


def test_an_active_key_past_its_expiry_is_expired_on_the_page_and_in_the_api(setup):
    with time_machine.travel(NOW, tick=False):
        page = setup["client"].get("/api-keys/", {"status": "expired"}).content.decode()
        listed = api_names(setup, {"status": "expired"})

    assert listed == {"past expiry"}
    assert "past expiry" in page and "prod first" not in page
    assert ApiKey.objects.get(name="past expiry").status == "active"  # no job has marked it yet


def test_the_page_filters_by_resource_group_like_the_api(setup):
    page = setup["client"].get("/api-keys/", {"resource_group": setup["support"].pk}).content.decode()

    assert "staging first" in page and "lab first" not in page


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"status": "paused"}, "status", "Must be one of active, suspended, expired, revoked."),
        ({"gateway": "x"}, "gateway", "A valid integer is required."),
        ({"resource_group": "-1"}, "resource_group", "A valid integer is required."),
    ],
)
def test_a_bad_filter_is_a_400_in_the_api_and_ignored_on_the_page(setup, params, field, message):
    response = setup["api"].get("/api/v1/api-keys", params)
    page = setup["client"].get("/api-keys/", params)

    assert response.status_code == 400 and response.json() == {field: [message]}
    assert page.status_code == 200
    assert "lab first" in page.content.decode() and "prod first" in page.content.decode()


def test_no_filter_reaches_another_groups_keys(setup):
    other = ApiKey.objects.get(name="not yours")

    assert api_names(setup, {"gateway": other.gateway_id}) == set()
    assert "not yours" not in setup["client"].get("/api-keys/", {"gateway": other.gateway_id}).content.decode()
