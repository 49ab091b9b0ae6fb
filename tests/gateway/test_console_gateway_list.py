"""The console's gateway list (SPEC §2): navigation by resource group, search and status filters
kept in the URL, this month's usage at a glance; and the console's error pages in the house
style (404 for another group's gateway, 403 for a role that may not act)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine

from gateway.models import GatewayStatus, Membership, Role
from gateway.services import gateway_update
from gateway.setup import gateway_create
from tests.factories import MembershipFactory, ResourceGroupFactory, UsageEventFactory, UserFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def viewer(client):
    support, research = ResourceGroupFactory(name="support"), ResourceGroupFactory(name="research")
    user = UserFactory()
    MembershipFactory(user=user, resource_group=support, role=Role.VIEWER)
    MembershipFactory(user=user, resource_group=research, role=Role.VIEWER)
    gateway_create(resource_group=support, name="helpdesk-bot")
    gateway_create(resource_group=support, name="triage")
    gateway_create(resource_group=research, name="paper-summaries")
    gateway_create(resource_group=ResourceGroupFactory(name="other-team"), name="not-yours")
    client.force_login(user)
    return client, support, research


def _names(response) -> list[str]:
    body = response.content.decode()
    return [name for name in ("helpdesk-bot", "triage", "paper-summaries", "not-yours") if f">{name}</a>" in body]


def test_the_list_navigates_by_resource_group(viewer):
    client, support, _ = viewer
    everything = client.get("/gateways/")
    only_support = client.get(f"/gateways/?group={support.pk}")

    assert _names(everything) == ["helpdesk-bot", "triage", "paper-summaries"]
    assert 'aria-current="page">support</a>' in only_support.content.decode()
    assert _names(only_support) == ["helpdesk-bot", "triage"]
    assert "other-team" not in everything.content.decode()


def test_search_and_status_filters_narrow_the_list_and_htmx_gets_the_table_alone(viewer):
    client, support, _ = viewer
    triage = support.gateways.get(name="triage")
    gateway_update(gateway=triage, status=GatewayStatus.DISABLED)

    searched = client.get("/gateways/?q=HELP")
    disabled = client.get("/gateways/?status=disabled")
    partial = client.get("/gateways/?q=paper", headers={"HX-Request": "true"})
    nothing = client.get("/gateways/?q=zzz")

    assert _names(searched) == ["helpdesk-bot"]
    assert _names(disabled) == ["triage"]
    assert _names(partial) == ["paper-summaries"]
    assert "<html" not in partial.content.decode() and 'id="gateway-table"' in partial.content.decode()
    assert "No gateways match" in nothing.content.decode()


def _as_developer_of(group) -> None:
    Membership.objects.filter(resource_group=group).update(role=Role.DEVELOPER)


def test_each_gateway_shows_this_months_usage_at_a_glance(viewer):
    client, support, research = viewer
    _as_developer_of(support)
    _as_developer_of(research)
    helpdesk = support.gateways.get(name="helpdesk-bot")
    key = helpdesk.api_keys.get()
    UsageEventFactory(
        api_key=key, created_at=datetime(2026, 11, 1, 0, 0, tzinfo=UTC), total_tokens=12_000, cost_usd=Decimal("1.25")
    )
    UsageEventFactory(
        api_key=key, created_at=datetime(2026, 11, 19, tzinfo=UTC), total_tokens=345, cost_usd=Decimal("0.0005")
    )
    UsageEventFactory(
        api_key=key, created_at=datetime(2026, 10, 31, 23, 59, 59, tzinfo=UTC), total_tokens=9, cost_usd=Decimal(9)
    )

    with time_machine.travel(NOW, tick=False):
        body = client.get("/gateways/").content.decode()

    assert "$1.2505</strong> · 12.3k tokens · 2 requests" in body
    assert "No requests yet" in body  # triage and paper-summaries


def test_another_groups_gateway_is_the_house_404_page(viewer, settings):
    settings.DEBUG = False
    client, _, _ = viewer
    hidden = UserFactory()  # a gateway the viewer cannot see
    group = ResourceGroupFactory()
    MembershipFactory(user=hidden, resource_group=group, role=Role.OWNER)
    gateway, _, _ = gateway_create(resource_group=group, name="secret-project")

    response = client.get(f"/gateways/{gateway.pk}/")

    assert response.status_code == 404
    body = response.content.decode()
    assert "This page does not exist" in body and "secret-project" not in body
    assert 'class="topbar"' in body  # the console's layout, not Django's bare page


def test_a_role_that_may_not_act_gets_the_house_403_page(viewer, settings):
    settings.DEBUG = False
    client, support, _ = viewer
    helpdesk = support.gateways.get(name="helpdesk-bot")

    response = client.post(f"/gateways/{helpdesk.pk}/limits/token-quota/", {"limit_tokens": 5})

    assert response.status_code == 403
    assert "Your role does not allow this" in response.content.decode()


def test_a_viewer_sees_the_gateways_but_not_their_usage(viewer):
    client, support, research = viewer
    key = support.gateways.get(name="helpdesk-bot").api_keys.get()
    UsageEventFactory(api_key=key, created_at=datetime(2026, 11, 19, tzinfo=UTC), cost_usd=Decimal("1.25"))

    with time_machine.travel(NOW, tick=False):
        body = client.get("/gateways/").content.decode()

    assert "helpdesk-bot" in body and "paper-summaries" in body
    assert "$1.25" not in body and "No requests yet" not in body
    assert body.count("data-usage-hidden") == 3


def test_usage_figures_show_only_in_the_groups_where_the_user_reads_usage(viewer):
    client, support, research = viewer
    _as_developer_of(research)
    for gateway in (support.gateways.get(name="helpdesk-bot"), research.gateways.get()):
        UsageEventFactory(
            api_key=gateway.api_keys.get(), created_at=datetime(2026, 11, 19, tzinfo=UTC), cost_usd=Decimal("2.5")
        )

    with time_machine.travel(NOW, tick=False):
        body = client.get("/gateways/").content.decode()

    assert body.count("$2.50</strong>") == 1  # research's paper-summaries only
    assert body.count("data-usage-hidden") == 2  # support's helpdesk-bot and triage
