"""The console on a small laptop screen (1024 × 700) in Debian's Chromium: no page scrolls
sideways (wide tables scroll inside their own box), and the top bar keeps every section in
reach. Screenshot 45 is saved to docs/screenshots/ with AIGW_SCREENSHOTS=1."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from gateway.models import Role
from gateway.setup import gateway_create
from tests.e2e.test_console_create_gateway import screenshot, sign_in
from tests.factories import MembershipFactory, ResourceGroupFactory, UsageEventFactory, UserFactory

pytestmark = pytest.mark.browser


def test_no_page_scrolls_sideways_on_a_laptop_screen(live, page):
    group = ResourceGroupFactory(name="customer-support-and-success")
    owner = UserFactory()
    MembershipFactory(user=owner, resource_group=group, role=Role.OWNER)
    gateway, key, _ = gateway_create(resource_group=group, name="a-gateway-with-a-rather-long-name-for-testing")
    for _ in range(5):
        UsageEventFactory(
            api_key=key,
            created_at=timezone.now(),
            model_requested="a-very-long-model-name-2026-11-01-preview",
            total_tokens=123_456,
            cost_usd=Decimal("12.3456789"),
        )
    pages = [
        "/gateways/",
        f"/gateways/{gateway.pk}/?tab=basic",
        f"/gateways/{gateway.pk}/?tab=keys",
        f"/gateways/{gateway.pk}/?tab=limits",
        f"/gateways/{gateway.pk}/?tab=logs",
        f"/gateways/{gateway.pk}/?tab=analysis",
        "/usage/",
        "/usage/logs/",
        "/audit/",
        "/account/api-tokens/",
    ]
    pages += [reverse(name) for name in ("api-key-list", "group-list", "provider-list")]

    page.set_viewport_size({"width": 1024, "height": 700})
    sign_in(page, owner)
    for url in pages:
        page.goto(url)
        expect(page.locator("main")).to_be_visible()
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{url} scrolls sideways by {overflow}px"
        nav = page.locator("header.topbar nav").bounding_box()
        assert nav is not None and nav["width"] <= 1024, url
    page.goto(f"/gateways/{gateway.pk}/?tab=keys")
    screenshot(page, "45-laptop-gateway-api-keys.png")
