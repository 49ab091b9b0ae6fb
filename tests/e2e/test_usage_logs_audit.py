"""Logs and the audit trail in a real browser (Debian's Chromium through Playwright): an auditor
filters the failed requests, opens one, downloads the CSV of the same filter, and reads who
changed a limit. Screenshots 42 to 44 are saved to docs/screenshots/ with AIGW_SCREENSHOTS=1."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from core.audit import audit_actor
from gateway.models import Role
from gateway.setup import gateway_create
from quotas.models import RefreshPeriod
from quotas.services import spend_budget_create, spend_budget_update
from tests.e2e.test_console_create_gateway import screenshot, sign_in
from tests.factories import MembershipFactory, ResourceGroupFactory, UsageEventFactory, UserFactory

pytestmark = pytest.mark.browser


def test_an_auditor_finds_the_failed_requests_and_who_changed_a_budget(live, page):
    group = ResourceGroupFactory(name="support-team")
    auditor, admin = UserFactory(), UserFactory(username="grace")
    MembershipFactory(user=auditor, resource_group=group, role=Role.AUDITOR)
    MembershipFactory(user=admin, resource_group=group, role=Role.ADMIN)
    gateway, key, _ = gateway_create(resource_group=group, name="support-bot")
    now = timezone.now()
    for n in range(30):
        UsageEventFactory(
            api_key=key,
            created_at=now - timedelta(minutes=n),
            model_requested="gpt-4o-mini",
            total_tokens=800 + n,
            cost_usd=Decimal("0.00042"),
            latency_ms=400 + n,
        )
    failed = UsageEventFactory(
        api_key=key,
        created_at=now - timedelta(minutes=3, seconds=30),
        status_code=429,
        error_code="rate_limit_exceeded",
        total_tokens=0,
        model_requested="gpt-4o-mini",
    )
    with audit_actor(admin, via="console"):
        budget = spend_budget_create(api_key=key, limit_usd=Decimal(10), refresh_period=RefreshPeriod.MONTHLY)
        spend_budget_update(budget=budget, limit_usd=Decimal(50))

    sign_in(page, auditor)
    page.get_by_role("link", name="Logs", exact=True).click()
    expect(page.locator("table.logs tbody tr")).to_have_count(31)
    screenshot(page, "42-logs.png")

    page.get_by_label("Status").select_option("error")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("table.logs tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("rate_limit_exceeded")
    with page.expect_download() as download:
        page.locator("[data-csv]").click()
    exported = list(csv.DictReader(io.StringIO(download.value.path().read_text())))
    assert [row["request_id"] for row in exported] == [failed.request_id]

    rows.first.get_by_role("link", name="Details").click()
    expect(page.get_by_role("heading", name="Request")).to_be_visible()
    expect(page.locator("dl.facts code").first).to_have_text(failed.request_id)
    screenshot(page, "43-log-event-detail.png")

    page.get_by_role("link", name="Audit trail").click()
    change = page.locator("table.audit tbody tr").filter(has_text="spend_budget.update")
    expect(change).to_contain_text("grace")
    expect(change.locator("td").nth(4)).to_contain_text("10")
    expect(change.locator("td").nth(5)).to_contain_text("50")
    expect(page.get_by_role("button", name="Delete")).to_have_count(0)
    screenshot(page, "44-audit-trail.png")


def test_a_viewer_is_offered_no_usage_links_and_is_refused_them_with_the_reason(live, page):
    group = ResourceGroupFactory(name="support-team")
    viewer = UserFactory()
    MembershipFactory(user=viewer, resource_group=group, role=Role.VIEWER)
    gateway, key, _ = gateway_create(resource_group=group, name="support-bot")
    UsageEventFactory(api_key=key, model_requested="gpt-4o-mini")

    sign_in(page, viewer)
    navigation = page.locator("header nav")
    expect(navigation.get_by_role("link", name="AI Gateways")).to_be_visible()
    for link in ("Usage", "Logs", "Audit trail"):
        expect(navigation.get_by_role("link", name=link, exact=True)).to_have_count(0)
    for url, reason in (
        ("/usage/", "Reading usage and logs needs"),
        ("/usage/logs/", "Reading usage and logs needs"),
        ("/audit/", "Reading the audit trail needs"),
    ):
        page.goto(url)
        expect(page.get_by_role("heading", name="Your role does not allow this")).to_be_visible()
        expect(page.locator("article.error-page")).to_contain_text(reason)
    page.goto(f"/usage/?gateway={gateway.pk}")
    expect(page.get_by_role("heading", name="Your role does not allow this")).to_be_visible()
