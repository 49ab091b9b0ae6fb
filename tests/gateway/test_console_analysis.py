"""The Data analysis tab of a gateway's details page: this UTC month's requests, tokens by type,
spend, error rate and top models, from the gateway's usage events."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine

from gateway.models import Role
from gateway.setup import gateway_create
from tests.factories import MembershipFactory, ResourceGroupFactory, UsageEventFactory, UserFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 1, 0, 0, 30, tzinfo=UTC)


def _stat(body: str, name: str) -> str:
    match = re.search(rf'data-stat="{name}"[^>]*>([^<]+)<', body)
    assert match, f"no {name} figure on the page"
    return match.group(1)


def _tokens(body: str, kind: str) -> str:
    match = re.search(rf'data-tokens="{kind}">(?:<strong>)?([^<]+)<', body)
    assert match, f"no {kind} tokens on the page"
    return match.group(1)


@pytest.fixture
def auditor_client(client):
    group = ResourceGroupFactory()
    user = UserFactory()
    MembershipFactory(user=user, resource_group=group, role=Role.AUDITOR)
    client.force_login(user)
    gateway, _api_key, _secret = gateway_create(resource_group=group, name="helpdesk")
    return client, gateway


def test_the_tab_adds_up_this_months_usage_by_token_type_and_model(auditor_client):
    client, gateway = auditor_client
    api_key = gateway.api_keys.get()
    first_second = datetime(2026, 12, 1, 0, 0, 0, tzinfo=UTC)
    UsageEventFactory(
        api_key=api_key,
        created_at=first_second,
        model_requested="gpt-4o-mini",
        input_tokens=1000,
        cached_input_tokens=400,
        output_tokens=250,
        reasoning_tokens=50,
        total_tokens=1250,
        cost_usd=Decimal("0.0003"),
    )
    UsageEventFactory(
        api_key=api_key,
        created_at=first_second,
        model_requested="claude-sonnet",
        input_tokens=2000,
        cache_write_tokens=1000,
        output_tokens=500,
        total_tokens=2500,
        cost_usd=Decimal("0.0135"),
    )
    UsageEventFactory(
        api_key=api_key,
        created_at=first_second,
        model_requested="gpt-4o-mini",
        status_code=429,
        error_code="rate_limit_exceeded",
        input_tokens=0,
        output_tokens=0,
        total_tokens=0,
        cost_usd=Decimal(0),
    )
    # The last second of November belongs to last month's figures.
    UsageEventFactory(
        api_key=api_key,
        created_at=datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC),
        total_tokens=99_999,
        input_tokens=99_999,
        output_tokens=0,
        cost_usd=Decimal(50),
    )

    with time_machine.travel(NOW, tick=False):
        response = client.get(f"/gateways/{gateway.pk}/?tab=analysis")

    body = response.content.decode()
    assert response.status_code == 200
    assert 'aria-selected="true" data-tab="analysis"' in body
    assert _stat(body, "requests") == "3"
    assert _stat(body, "tokens") == "3.8k"
    assert _stat(body, "cost") == "$0.0138"
    assert _stat(body, "error-rate") == "33.3%"
    assert [_tokens(body, kind) for kind in ("input", "cached", "cache-write", "output", "reasoning", "total")] == [
        "3,000",
        "400",
        "1,000",
        "750",
        "50",
        "3,750",
    ]
    # Costliest model first.
    assert body.index(">claude-sonnet<") < body.index(">gpt-4o-mini<")


def test_a_month_without_requests_says_what_to_do(auditor_client):
    client, gateway = auditor_client

    with time_machine.travel(NOW, tick=False):
        body = client.get(f"/gateways/{gateway.pk}/?tab=analysis", headers={"HX-Request": "true"}).content.decode()

    assert "No usage this month" in body and "<html" not in body
    assert _stat(body, "requests") == "0" and _stat(body, "cost") == "$0.00"
