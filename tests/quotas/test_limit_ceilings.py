"""Exactness stated and enforced (docs/limits.md, "Exactness"): spend counters hold integer
units of 1e-10 USD added in Redis' Lua doubles, exact up to 2**53 units ($900,719.93), so a spend
budget is at most $900,000 and a larger one is refused with a clear error everywhere a limit is
set: services, the management API, the Vercel-compatible quotas API and the console. Token
quotas, TPM and RPM are at most 10**15."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from core.errors import ValidationFailed
from gateway.models import Gateway, Role
from gateway.setup import gateway_create
from quotas.counters import USD_UNITS
from quotas.models import SpendBudget
from quotas.services import MAXIMUM_BUDGET_USD, MAXIMUM_TOKENS, rate_limit_set, spend_budget_create, token_quota_set
from tests.support.people import api_client_as, member_of

pytestmark = pytest.mark.django_db


def test_the_budget_ceiling_is_within_what_a_double_counts_exactly():
    assert MAXIMUM_BUDGET_USD * USD_UNITS < 2**53


def test_a_budget_of_exactly_the_ceiling_is_kept_and_one_ten_thousandth_more_is_refused(group):
    gateway, _, _ = gateway_create(resource_group=group, name="big")
    budget = spend_budget_create(gateway=gateway, limit_usd=Decimal("900000"))
    assert budget.limit_usd == Decimal("900000")

    other, _, _ = gateway_create(resource_group=group, name="bigger")
    with pytest.raises(ValidationFailed) as refused:
        spend_budget_create(gateway=other, limit_usd=Decimal("900000.0001"))
    assert "at most 900,000 USD" in str(refused.value.fields["limit_usd"])
    assert not SpendBudget.objects.filter(gateway=other).exists()


def test_token_quotas_and_rate_limits_have_a_ceiling_too(group):
    gateway, _, _ = gateway_create(resource_group=group, name="tokens")
    assert token_quota_set(gateway=gateway, limit_tokens=MAXIMUM_TOKENS).limit_tokens == MAXIMUM_TOKENS
    with pytest.raises(ValidationFailed):
        token_quota_set(gateway=gateway, limit_tokens=MAXIMUM_TOKENS + 1)
    with pytest.raises(ValidationFailed):
        rate_limit_set(gateway=gateway, tokens_per_minute=MAXIMUM_TOKENS + 1, requests_per_minute=None)


def test_the_management_api_refuses_a_five_million_dollar_budget_with_400_naming_the_field(group):
    client = api_client_as(member_of(group, Role.ADMIN))
    response = client.post(
        "/api/v1/gateways",
        {"name": "huge", "resource_group": group.pk, "spend_budget_usd": "5000000"},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert "at most 900,000 USD" in response.json()["spend_budget_usd"][0]
    assert not Gateway.objects.filter(name="huge").exists()


def test_the_quotas_api_refuses_a_budget_over_the_ceiling_in_vercels_shape(group):
    _, api_key, _ = gateway_create(resource_group=group, name="vercel")
    client = api_client_as(member_of(group, Role.ADMIN))
    response = client.post(
        "/api/v1/quotas",
        {"quotaEntityId": f"api_key_id_{api_key.pk}", "limitAmount": 1_000_000},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert response.json()["field"] == "limitAmount"
    assert "900,000" in response.json()["error"]


def test_the_console_shows_the_ceiling_as_a_form_error(client, group):
    client.force_login(member_of(group, Role.OWNER))
    form = {
        "unlimited_quota": "on",
        "name": "console-huge",
        "resource_group": group.pk,
        "accept_terms": "on",
        "spend_budget_usd": "2000000",
    }
    response = client.post(reverse("gateway-create"), form, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "at most 900,000 USD" in response.content.decode()
    assert not Gateway.objects.filter(name="console-huge").exists()
