"""The console's Create AI Gateway dialog in a real browser (Debian's Chromium through Playwright),
against a live aigw server: every step, the show-once API key, the details page, and a call with
the official `openai` SDK showing up in the gateway's Logs tab.

Screenshots of each screen are saved to docs/screenshots/.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from openai import OpenAI
from playwright.sync_api import Page, expect

from core.templatetags.aigw import usd
from gateway.models import Gateway, Role
from tests.conftest import wait_for_usage_event
from tests.factories import MembershipFactory, ResourceGroupFactory, UserFactory

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PASSWORD = "correct horse battery staple"
QUOTA_ERROR = "Enter a positive number of tokens, or tick Unlimited quota."


def screenshot(page: Page, name: str, *, full_page: bool = True) -> None:
    """Save a screenshot to docs/screenshots/ when AIGW_SCREENSHOTS=1 (`scripts/dev.py screenshots`)."""
    if os.environ.get("AIGW_SCREENSHOTS") != "1":
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / name, full_page=full_page, animations="disabled")


def sign_in(page: Page, user) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="AI Gateways", level=1)).to_be_visible()


def open_create_dialog(page: Page):
    page.get_by_role("button", name="Create AI Gateway").click()
    dialog = page.get_by_role("dialog", name="Create AI Gateway")
    expect(dialog.get_by_role("group", name="Configure token quota")).to_be_visible()
    return dialog


def current_step(dialog):
    return dialog.locator('.steps [aria-current="step"]')


def test_an_admin_creates_a_gateway_and_sees_its_key_once(live, page):
    user = UserFactory()
    MembershipFactory(user=user, resource_group=ResourceGroupFactory(name="research"), role=Role.ADMIN)
    support = ResourceGroupFactory(name="support-team")
    MembershipFactory(user=user, resource_group=support, role=Role.OWNER)
    MembershipFactory(user=user, resource_group=ResourceGroupFactory(name="finance"), role=Role.VIEWER)

    sign_in(page, user)
    expect(page.get_by_role("heading", name="No AI gateways yet")).to_be_visible()
    screenshot(page, "01-gateway-list-empty.png")

    # Step 1: token quota, Unlimited by default.
    dialog = open_create_dialog(page)
    expect(current_step(dialog)).to_have_text("Token quota")
    unlimited, quota = dialog.get_by_label("Unlimited quota"), dialog.get_by_label("Token quota")
    expect(unlimited).to_be_checked()
    expect(quota).to_be_disabled()
    expect(dialog.get_by_role("button", name="Back")).to_be_hidden()
    expect(dialog.get_by_role("button", name="Create")).to_be_hidden()
    unlimited.uncheck()
    quota.fill("250000")
    screenshot(page, "02-create-step-1-token-quota.png", full_page=False)
    dialog.get_by_role("button", name="Next").click()

    # Step 2: API key expiration.
    expect(dialog.get_by_role("group", name="API key expiration")).to_be_visible()
    expect(dialog.get_by_role("group", name="Configure token quota")).to_be_hidden()
    expect(current_step(dialog)).to_have_text("Expiration")
    dialog.get_by_role("combobox", name="API key expiration").select_option(label="30 days")
    screenshot(page, "04-create-step-2-expiration.png", full_page=False)
    dialog.get_by_role("button", name="Next").click()

    # Step 3: name.
    expect(current_step(dialog)).to_have_text("Name")
    dialog.get_by_role("textbox", name="AI gateway name").fill("support-bot")
    screenshot(page, "05-create-step-3-name.png", full_page=False)
    dialog.get_by_role("button", name="Next").click()

    # Step 4: resource group, only those where the user may create gateways.
    expect(current_step(dialog)).to_have_text("More settings")
    group = dialog.get_by_label("Resource group")
    expect(group.locator("option")).to_have_text(["research", "support-team"])
    group.select_option(label="support-team")
    screenshot(page, "06-create-step-4-more-settings.png", full_page=False)
    dialog.get_by_role("button", name="Next").click()

    # Step 5: Create without accepting the terms is refused by the server, on this step.
    expect(current_step(dialog)).to_have_text("Create")
    expect(dialog.get_by_role("button", name="Next")).to_be_hidden()
    dialog.get_by_role("button", name="Create").click()
    expect(dialog.get_by_text("Tick the box to accept the AI Gateway terms.")).to_be_visible()
    expect(dialog.get_by_role("group", name="Complete creation")).to_be_visible()
    expect(current_step(dialog)).to_have_text("Create")
    assert not Gateway.objects.exists()
    screenshot(page, "07-create-step-5-terms-required.png", full_page=False)

    dialog.get_by_label("I have read and accept the AI Gateway terms").check()
    dialog.get_by_role("button", name="Create").click()

    # The key, once, with a copy button and a warning.
    key_field = dialog.get_by_label("New API key")
    expect(key_field).to_have_value(re.compile(r"^aigw_[A-Za-z0-9]{43}$"))
    secret = key_field.input_value()
    assert len(secret) == 48
    expect(dialog.get_by_text("It cannot be shown again.")).to_be_visible()
    dialog.get_by_role("button", name="Copy").click()
    expect(dialog.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == secret
    screenshot(page, "08-create-show-key-once.png", full_page=False)

    gateway = Gateway.objects.get(name="support-bot")
    assert gateway.resource_group == support
    assert gateway.token_quota.limit_tokens == 250_000
    api_key = gateway.api_keys.get()
    assert abs(api_key.expires_at - (timezone.now() + timedelta(days=30))) < timedelta(minutes=2)
    assert api_key.hashed_secret != secret
    assert secret not in api_key.hashed_secret
    assert api_key.prefix == secret[:12]

    # Closing the dialog shows the list with the new gateway; the key is nowhere on the page.
    dialog.get_by_role("button", name="Close").click()
    row = page.get_by_role("row").filter(has_text="support-bot")
    expect(row).to_contain_text("support-team")
    expect(row).to_contain_text("Enabled")
    assert secret not in page.content()
    page.reload()
    expect(row).to_be_visible()
    assert secret not in page.content()
    screenshot(page, "09-gateway-list.png")

    # The details page shows the key's prefix and the quota, never the key.
    row.get_by_role("link", name="support-bot").click()
    expect(page.get_by_role("heading", name="support-bot")).to_be_visible()
    expect(page.get_by_role("tab", name="Basic information")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_text("0 / 250,000 tokens used")).to_be_visible()
    key_row = page.get_by_role("row").filter(has_text=api_key.prefix)
    expect(key_row).to_contain_text("active")
    expect(key_row).to_contain_text(api_key.expires_at.strftime("%Y-%m-%d"))
    assert secret not in page.content()
    screenshot(page, "10-gateway-details-basic.png")

    # The key works with the official SDK, and the request shows in the Logs tab.
    client = OpenAI(base_url=live.v1, api_key=secret)
    raw = client.chat.completions.with_raw_response.create(
        model="mock/echo", messages=[{"role": "user", "content": "Hello from the console test"}]
    )
    completion = raw.parse()
    request_id = raw.headers["x-request-id"]
    event = wait_for_usage_event(request_id)
    assert event.cost_usd > 0

    page.get_by_role("tab", name="Logs").click()
    expect(page.get_by_role("tab", name="Logs")).to_have_attribute("aria-selected", "true")
    log_row = page.locator(f'tr[data-request-id="{request_id}"]')
    expect(log_row).to_contain_text("mock/echo")
    expect(log_row).to_contain_text("support-bot key")
    expect(log_row.locator('[data-col="total"]')).to_have_text(f"{completion.usage.total_tokens:,}")
    expect(log_row.locator('[data-col="cost"]')).to_have_text(usd(event.cost_usd))
    screenshot(page, "11-gateway-details-logs.png")

    page.reload()
    expect(log_row).to_be_visible()
    assert secret not in page.content()
    page.get_by_role("tab", name="Basic information").click()
    expect(page.get_by_text(f"{completion.usage.total_tokens} / 250,000 tokens used")).to_be_visible()
    assert secret not in page.content()

    # Data analysis adds up the month: the one request, its tokens and its cost.
    page.get_by_role("tab", name="Data analysis").click()
    expect(page.get_by_role("tab", name="Data analysis")).to_have_attribute("aria-selected", "true")
    expect(page.locator('[data-stat="requests"]')).to_have_text("1")
    expect(page.locator('[data-stat="cost"]')).to_have_text(usd(event.cost_usd))
    expect(page.locator('[data-tokens="total"]')).to_have_text(f"{completion.usage.total_tokens:,}")
    expect(page.locator("table.top-models")).to_contain_text("mock/echo")
    screenshot(page, "17-gateway-details-data-analysis.png")


def test_a_limited_token_quota_must_be_a_positive_number_of_tokens(page):
    user = UserFactory()
    MembershipFactory(user=user, resource_group=ResourceGroupFactory(name="research"), role=Role.ADMIN)
    sign_in(page, user)

    dialog = open_create_dialog(page)
    quota = dialog.get_by_label("Token quota")
    dialog.get_by_label("Unlimited quota").uncheck()

    # Empty, zero or negative: Next keeps the user on step 1 with the reason under the field,
    # which goes away as soon as the value is a positive number.
    for value in ("", "0", "-5"):
        quota.fill(value)
        dialog.get_by_role("button", name="Next").click()
        expect(dialog.get_by_text(QUOTA_ERROR)).to_be_visible()
        expect(quota).to_have_attribute("aria-invalid", "true")
        expect(current_step(dialog)).to_have_text("Token quota")
        if value == "-5":
            screenshot(page, "03-create-step-1-invalid-quota.png", full_page=False)
        quota.fill("1000")
        expect(dialog.get_by_text(QUOTA_ERROR)).to_be_hidden()
        expect(quota).not_to_have_attribute("aria-invalid", "true")

    dialog.get_by_role("button", name="Next").click()
    expect(current_step(dialog)).to_have_text("Expiration")

    # The server refuses it too (for a client without the dialog's checks) and reopens step 1.
    token = dialog.locator("input[name=csrfmiddlewaretoken]").input_value()
    research = user.memberships.get().resource_group
    for value in ("", "0", "-5"):
        response = page.request.post(
            "/gateways/new/",
            headers={"HX-Request": "true", "X-CSRFToken": token},
            form={
                "token_quota": value,
                "expires_in": "30d",
                "name": "bot",
                "resource_group": str(research.pk),
                "accept_terms": "on",
            },
        )
        assert response.ok
        html = response.text()
        assert re.search(r'id="id_token_quota-error">([^<]*)</small>', html).group(1) == QUOTA_ERROR
        assert 'data-active-step="1"' in html
    assert not Gateway.objects.exists()
