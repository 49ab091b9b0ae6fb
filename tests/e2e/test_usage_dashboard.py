"""The usage dashboard in a real browser (Debian's Chromium through Playwright) with seeded usage:
the four charts draw, the figures match the events, and the key link narrows the view.
Screenshot 40 is saved to docs/screenshots/ with AIGW_SCREENSHOTS=1."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from core.templatetags.aigw import usd
from gateway.models import Role
from gateway.setup import gateway_create
from keys.services import api_key_create
from quotas.models import RefreshPeriod
from quotas.services import spend_budget_create
from tests.e2e.test_console_create_gateway import screenshot, sign_in
from tests.factories import MembershipFactory, ResourceGroupFactory, UsageEventFactory, UserFactory
from usage.jobs import rollup_usage

pytestmark = pytest.mark.browser


def test_an_auditor_reads_the_charts_of_a_gateway(live, page):
    group = ResourceGroupFactory(name="support-team")
    auditor = UserFactory()
    MembershipFactory(user=auditor, resource_group=group, role=Role.AUDITOR)
    gateway, bot, _ = gateway_create(resource_group=group, name="support-bot")
    batch, _ = api_key_create(gateway=gateway, name="nightly-batch")
    spend_budget_create(api_key=batch, limit_usd=Decimal(25), refresh_period=RefreshPeriod.MONTHLY)
    now = timezone.now()
    total = Decimal(0)
    for day in range(14):
        for hour in (9, 13, 17):
            at = (now - timedelta(days=day)).replace(hour=hour, minute=0)
            if at > now:
                continue
            for api_key, model, cost in ((bot, "gpt-4o-mini", "0.0123"), (batch, "claude-sonnet", "0.21")):
                UsageEventFactory(
                    api_key=api_key,
                    created_at=at,
                    model_requested=model,
                    total_tokens=1200 + 40 * day,
                    cached_input_tokens=200,
                    cost_usd=Decimal(cost),
                    latency_ms=300 + 25 * hour,
                    status_code=429 if day == 3 and hour == 13 else 200,
                )
                total += Decimal(cost)
    rollup_usage(now)

    sign_in(page, auditor)
    page.goto(f"/gateways/{gateway.pk}/?tab=analysis")
    page.locator("[data-dashboard-link]").click()
    page.get_by_label("Range").select_option("30d")
    page.get_by_role("button", name="Show").click()

    expect(page).to_have_url(f"{live.url}/usage/?group=&gateway={gateway.pk}&range=30d&since=&until=")
    expect(page.locator("html[data-charts-ready]")).to_have_count(1)
    for chart in ("requests", "tokens", "spend", "latency"):
        box = page.locator(f"#chart-{chart}").bounding_box()
        assert box and box["width"] > 200 and box["height"] > 150
    expect(page.locator('[data-stat="cost"]')).to_have_text(usd(total))
    expect(page.locator("table.top-models tbody tr").first).to_contain_text("claude-sonnet")
    screenshot(page, "40-usage-dashboard.png")

    page.locator("table.top-keys").get_by_role("link", name="nightly-batch").click()
    expect(page.locator("[data-scope]")).to_have_text("API key nightly-batch")
    expect(page.locator("[data-burn]")).to_contain_text("/ $25.00 spent · monthly")
    expect(page.locator("[data-forecast]")).to_be_visible()
    screenshot(page, "41-usage-dashboard-key-budget-burn.png")
