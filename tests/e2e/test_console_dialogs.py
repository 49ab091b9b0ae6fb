"""The gateway details dialogs and the API keys page in a real browser (Debian's Chromium through
Playwright) against a live aigw server: Manage token quota, Manage expiration, Duplicate,
Enable/Disable, Delete, Create API key, Rotate, Revoke, the API keys page's filters, each with one
invalid input, and what an auditor sees. SPEC §2.

Screenshots 20 to 28 are saved to docs/screenshots/ with AIGW_SCREENSHOTS=1.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from gateway.models import Gateway, GatewayStatus, Role
from gateway.setup import gateway_create
from keys.models import ApiKey, ApiKeyStatus
from keys.services import api_key_create, api_key_revoke
from keys.tokens import hash_secret
from quotas.models import RefreshPeriod, SpendBudget, TokenQuota
from quotas.services import spend_budget_create
from tests.e2e.test_console_create_gateway import screenshot, sign_in
from tests.factories import MembershipFactory, ResourceGroupFactory, UsageEventFactory, UserFactory

pytestmark = pytest.mark.browser

QUOTA_ERROR = "Enter a positive number of tokens, or tick Unlimited quota."


@pytest.fixture
def admin_and_gateway(live):
    user = UserFactory()
    group = ResourceGroupFactory(name="support-team")
    MembershipFactory(user=user, resource_group=group, role=Role.ADMIN)
    gateway, api_key, _ = gateway_create(resource_group=group, name="support-bot", created_by=user)
    return user, gateway, api_key


def open_dialog(page: Page, button: str, title: str):
    page.get_by_role("button", name=button, exact=True).click()
    dialog = page.get_by_role("dialog", name=title)
    expect(dialog.locator("form, .created, .dialog-empty").first).to_be_visible()
    return dialog


def toast(page: Page, text: str):
    return page.locator("#toasts").get_by_text(text)


def test_an_admin_manages_the_token_quota_and_the_expiration(admin_and_gateway, page):
    user, gateway, api_key = admin_and_gateway
    batch, _ = api_key_create(gateway=gateway, name="batch-jobs")
    sign_in(page, user)
    page.goto(f"/gateways/{gateway.pk}/")
    actions = page.get_by_role("group", name="Gateway actions")
    for label in ("Manage token quota", "Manage expiration", "Duplicate", "Disable", "Delete"):
        expect(actions.get_by_role("button", name=label, exact=True)).to_be_visible()
    expect(page.get_by_text("Unlimited quota", exact=True)).to_be_visible()
    screenshot(page, "20-gateway-actions.png", full_page=False)
    page.evaluate("window.notReloaded = true")

    # Manage token quota: focus on the first field; zero is refused inline; then saved in place.
    dialog = open_dialog(page, "Manage token quota", "Manage token quota")
    unlimited = dialog.get_by_label("Unlimited quota")
    expect(unlimited).to_be_focused()
    expect(unlimited).to_be_checked()
    unlimited.uncheck()
    quota = dialog.get_by_label("Token quota (tokens, all types)")
    expect(quota).to_be_enabled()
    quota.fill("0")
    dialog.get_by_role("button", name="Save token quota").click()
    expect(dialog.get_by_text(QUOTA_ERROR)).to_be_visible()
    expect(dialog.get_by_label("Token quota (tokens, all types)")).to_have_attribute("aria-invalid", "true")
    assert not TokenQuota.objects.exists()
    dialog.get_by_label("Token quota (tokens, all types)").fill("500000")
    dialog.get_by_label("Refresh period").select_option("monthly")
    dialog.get_by_role("button", name="Save token quota").click()
    expect(dialog).to_be_hidden()
    expect(toast(page, "Token quota saved.")).to_be_visible()
    expect(page.get_by_text("0 / 500,000 tokens used · resets monthly")).to_be_visible()
    assert TokenQuota.objects.get(gateway=gateway).limit_tokens == 500_000

    # Escape closes a dialog.
    dialog = open_dialog(page, "Manage token quota", "Manage token quota")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()

    # Manage expiration: pick one of the two keys; a past custom time is refused.
    dialog = open_dialog(page, "Manage expiration", "Manage expiration")
    key_picker = dialog.get_by_label("API key", exact=True)
    expect(key_picker).to_be_focused()
    key_picker.select_option(str(batch.pk))
    custom = dialog.get_by_label("Expires at (UTC)")
    expect(custom).to_be_hidden()
    dialog.get_by_label("API key expiration").select_option("custom")
    expect(custom).to_be_visible()
    custom.fill("2001-01-01T00:00")
    dialog.get_by_role("button", name="Save expiration").click()
    expect(dialog.get_by_text("The expiry must be in the future.")).to_be_visible()
    dialog.get_by_label("API key expiration").select_option("30d")
    screenshot(page, "21-manage-expiration.png", full_page=False)
    dialog.get_by_role("button", name="Save expiration").click()
    expect(dialog).to_be_hidden()
    expect(toast(page, "Expiration of batch-jobs saved.")).to_be_visible()
    batch.refresh_from_db()
    api_key.refresh_from_db()
    assert (
        batch.expires_at is not None
        and abs(batch.expires_at - (timezone.now() + timedelta(days=30))).total_seconds() < 120
    )
    assert api_key.expires_at is None
    expect(page.get_by_role("row").filter(has_text="batch-jobs")).to_contain_text(f"{batch.expires_at:%Y-%m-%d %H:%M}")
    assert page.evaluate("window.notReloaded") is True


def test_an_admin_duplicates_a_gateway_and_copies_its_new_key(admin_and_gateway, page):
    user, gateway, _ = admin_and_gateway
    sign_in(page, user)
    page.goto(f"/gateways/{gateway.pk}/")

    dialog = open_dialog(page, "Duplicate", "Duplicate AI gateway")
    name = dialog.get_by_label("Name of the copy")
    expect(name).to_have_value("support-bot (copy)")
    expect(name).to_be_focused()
    name.fill("support-bot")
    dialog.get_by_role("button", name="Duplicate").click()
    expect(dialog.get_by_text("A gateway named 'support-bot' already exists in support-team.")).to_be_visible()
    assert Gateway.objects.count() == 1

    dialog.get_by_label("Name of the copy").fill("support-bot EU")
    dialog.get_by_role("button", name="Duplicate").click()
    secret_field = dialog.get_by_label("New API key")
    expect(secret_field).to_be_visible()
    expect(dialog.get_by_text("It cannot be shown again.")).to_be_visible()
    secret = secret_field.input_value()
    copy = Gateway.objects.get(name="support-bot EU")
    assert ApiKey.objects.get(gateway=copy).hashed_secret == hash_secret(secret)
    dialog.get_by_role("button", name="Copy").click()
    expect(dialog.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == secret
    screenshot(page, "22-duplicate.png", full_page=False)

    # Closing forgets the secret; the link opens the copy.
    dialog.get_by_role("button", name="Close", exact=True).first.click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#duplicated-api-key")).to_have_count(0)
    assert secret not in page.content()
    dialog = open_dialog(page, "Duplicate", "Duplicate AI gateway")
    expect(dialog.get_by_label("Name of the copy")).to_have_value("support-bot (copy)")
    page.keyboard.press("Escape")
    page.goto(f"/gateways/{copy.pk}/")
    expect(page.get_by_role("heading", name="support-bot EU", level=1)).to_be_visible()


def test_an_admin_disables_then_deletes_a_gateway(admin_and_gateway, page):
    user, gateway, _ = admin_and_gateway
    sign_in(page, user)
    page.goto(f"/gateways/{gateway.pk}/")

    page.get_by_role("button", name="Disable", exact=True).click()
    expect(toast(page, "support-bot is disabled: requests with its API keys are refused.")).to_be_visible()
    expect(page.locator("#gateway-head .badge")).to_have_text("Disabled")
    assert Gateway.objects.get(pk=gateway.pk).status == GatewayStatus.DISABLED
    page.get_by_role("button", name="Enable", exact=True).click()
    expect(page.locator("#gateway-head .badge")).to_have_text("Enabled")

    dialog = open_dialog(page, "Delete", "Delete AI gateway")
    confirm = dialog.get_by_label("Type support-bot to confirm")
    expect(confirm).to_be_focused()
    confirm.fill("support")
    dialog.get_by_role("button", name="Delete AI gateway").click()
    expect(dialog.get_by_text("That is not this gateway's name. Type support-bot to delete it.")).to_be_visible()
    assert Gateway.objects.get(pk=gateway.pk).deleted_at is None
    dialog.get_by_label("Type support-bot to confirm").fill("support-bot")
    screenshot(page, "23-delete.png", full_page=False)
    dialog.get_by_role("button", name="Delete AI gateway").click()

    expect(page.get_by_role("heading", name="AI Gateways", level=1)).to_be_visible()
    expect(toast(page, "AI gateway support-bot deleted. Its API keys stopped working.")).to_be_visible()
    expect(page.get_by_role("heading", name="No AI gateways yet")).to_be_visible()
    assert Gateway.objects.get(pk=gateway.pk).deleted_at is not None


def test_an_admin_creates_rotates_and_revokes_api_keys(admin_and_gateway, page):
    user, gateway, api_key = admin_and_gateway
    sign_in(page, user)
    page.goto(f"/gateways/{gateway.pk}/?tab=keys")
    page.evaluate("window.notReloaded = true")

    # Create API key: a blank name is refused; then the key is shown once.
    dialog = open_dialog(page, "Create API key", "Create API key")
    expect(dialog.get_by_label("Name")).to_be_focused()
    dialog.get_by_role("button", name="Create API key").click()
    expect(dialog.get_by_text("Enter a name for the API key.")).to_be_visible()
    dialog.get_by_label("Name").fill("production")
    dialog.get_by_label("API key expiration").select_option("90d")
    dialog.get_by_label("Spend budget (USD)").fill("10")
    dialog.get_by_label("Refresh period").select_option("monthly")
    screenshot(page, "24-create-key.png", full_page=False)
    dialog.get_by_role("button", name="Create API key").click()
    secret = dialog.get_by_label("New API key").input_value()
    expect(dialog.get_by_text("It cannot be shown again.")).to_be_visible()
    created = ApiKey.objects.get(name="production")
    assert created.hashed_secret == hash_secret(secret) and created.created_by == user
    assert SpendBudget.objects.get(api_key=created).limit_usd == Decimal(10)
    expect(toast(page, "API key production created.")).to_be_visible()
    # The table behind the dialog already has the key.
    new_row = page.get_by_role("row").filter(has_text="production")
    expect(new_row).to_contain_text("$0.00 / $10 spent · monthly")
    assert page.locator("#tab-content .overflow-auto").evaluate("el => el.scrollWidth - el.clientWidth") <= 1
    screenshot(page, "25-key-created.png", full_page=False)
    dialog.get_by_role("button", name="Done").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#created-api-key")).to_have_count(0)
    assert secret not in page.content()

    # Rotate: confirm, then a new secret; the old one no longer matches.
    row = page.get_by_role("row").filter(has_text="support-bot key")
    old_hash = api_key.hashed_secret
    row.get_by_role("button", name="Rotate support-bot key").click()
    dialog = page.get_by_role("dialog", name="Rotate API key")
    expect(dialog.get_by_text("The current secret stops working at once")).to_be_visible()
    expect(dialog.get_by_role("button", name="Rotate API key")).to_be_focused()
    screenshot(page, "26-rotate.png", full_page=False)
    dialog.get_by_role("button", name="Rotate API key").click()
    rotated = dialog.get_by_label("New API key").input_value()
    api_key.refresh_from_db()
    assert api_key.hashed_secret == hash_secret(rotated) != old_hash
    expect(row).to_contain_text(rotated[:12])
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    screenshot(page, "29-api-keys-tab.png", full_page=False)

    # Rotating a key revoked meanwhile is refused inline.
    row = page.get_by_role("row").filter(has_text="production")
    row.get_by_role("button", name="Rotate production").click()
    expect(dialog.get_by_role("button", name="Rotate API key")).to_be_visible()
    api_key_revoke(api_key=created)
    dialog.get_by_role("button", name="Rotate API key").click()
    expect(dialog.get_by_text("A revoked API key cannot be rotated.")).to_be_visible()
    assert ApiKey.objects.get(pk=created.pk).hashed_secret == hash_secret(secret)
    page.keyboard.press("Escape")

    # Revoke: a key revoked meanwhile is said so; then a real revoke, shown in place.
    other, _ = api_key_create(gateway=gateway, name="staging")
    page.reload()
    page.evaluate("window.notReloaded = true")
    row = page.get_by_role("row").filter(has_text="staging")
    row.get_by_role("button", name="Revoke staging").click()
    dialog = page.get_by_role("dialog", name="Revoke API key")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    api_key_revoke(api_key=other)
    dialog.get_by_role("button", name="Revoke API key").click()
    expect(dialog.get_by_text("This API key is already revoked.")).to_be_visible()
    dialog.get_by_role("button", name="Cancel").click()
    row = page.get_by_role("row").filter(has_text="support-bot key")
    row.get_by_role("button", name="Revoke support-bot key").click()
    dialog.get_by_role("button", name="Revoke API key").click()
    expect(dialog).to_be_hidden()
    expect(toast(page, "API key support-bot key revoked. Requests with it are refused.")).to_be_visible()
    expect(row).to_contain_text("revoked")
    expect(row.get_by_role("button", name="Rotate support-bot key")).to_have_count(0)
    assert ApiKey.objects.get(pk=api_key.pk).status == ApiKeyStatus.REVOKED
    assert page.evaluate("window.notReloaded") is True


def test_the_api_keys_page_filters_in_place(admin_and_gateway, page):
    user, gateway, api_key = admin_and_gateway
    staging, staging_key, _ = gateway_create(resource_group=gateway.resource_group, name="staging")
    spend_budget_create(api_key=staging_key, limit_usd=10, refresh_period=RefreshPeriod.MONTHLY)
    UsageEventFactory(api_key=staging_key, created_at=timezone.now(), cost_usd=Decimal("1.04"))
    nightly, _ = api_key_create(gateway=gateway, name="nightly-eval", expires_at=timezone.now() - timedelta(hours=1))
    old, _ = api_key_create(gateway=staging, name="old-ci")
    api_key_revoke(api_key=old)
    sign_in(page, user)

    page.get_by_role("link", name="API keys", exact=True).click()
    expect(page.get_by_role("heading", name="API keys", level=1)).to_be_visible()
    table = page.locator("#api-keys-table")
    expect(table.get_by_role("row")).to_have_count(5)
    expect(table.get_by_role("row").filter(has_text="staging key")).to_contain_text("$1.04 / $10 spent · monthly")
    expect(table.get_by_role("row").filter(has_text="support-bot key")).to_contain_text("Unlimited quota")
    expect(table.get_by_role("row").filter(has_text="nightly-eval")).to_contain_text("expired")
    overflow = "el => el.scrollWidth - el.clientWidth"
    assert table.locator(".overflow-auto").evaluate(overflow) <= 1  # no sideways scrolling at 1280 px
    screenshot(page, "27-api-keys-page.png")
    page.evaluate("window.notReloaded = true")

    page.get_by_label("Status", exact=True).select_option("revoked")
    expect(table.get_by_role("row")).to_have_count(2)
    expect(table).to_contain_text("old-ci")
    expect(page).to_have_url(re.compile(r"status=revoked"))

    page.get_by_label("Status", exact=True).select_option("")
    page.get_by_label("Gateway", exact=True).select_option(str(staging.pk))
    expect(table.get_by_role("row")).to_have_count(3)
    page.get_by_label("Search API keys by name or prefix").fill("no such key")
    expect(page.get_by_role("heading", name="No API keys match")).to_be_visible()
    expect(page).to_have_url(re.compile(r"q=no(\+|%20)such(\+|%20)key"))
    screenshot(page, "28-api-keys-no-match.png", full_page=False)
    assert page.evaluate("window.notReloaded") is True

    # The filtered URL can be shared: loading it gives the same view; Show all clears it.
    page.reload()
    expect(page.get_by_role("heading", name="No API keys match")).to_be_visible()
    page.get_by_role("link", name="Show all API keys").click()
    expect(table.get_by_role("row")).to_have_count(5)
    page.evaluate("window.notReloaded = true")

    # Row actions work here too: revoke and the row updates in place.
    row = table.get_by_role("row").filter(has_text="nightly-eval")
    row.get_by_role("button", name="Revoke nightly-eval").click()
    page.get_by_role("dialog", name="Revoke API key").get_by_role("button", name="Revoke API key").click()
    expect(row).to_contain_text("revoked")
    assert ApiKey.objects.get(pk=nightly.pk).status == ApiKeyStatus.REVOKED

    # Create API key from this page: pick the gateway; the new key joins the table in place.
    dialog = open_dialog(page, "Create API key", "Create API key")
    expect(dialog.get_by_label("AI gateway")).to_be_focused()
    dialog.get_by_label("AI gateway").select_option(str(staging.pk))
    dialog.get_by_label("Name").fill("from-the-page")
    dialog.get_by_role("button", name="Create API key").click()
    expect(dialog.get_by_label("New API key")).to_be_visible()
    expect(table.get_by_role("row").filter(has_text="from-the-page")).to_contain_text("staging")
    assert ApiKey.objects.get(name="from-the-page").gateway == staging
    assert page.evaluate("window.notReloaded") is True


def test_an_auditor_sees_no_edit_buttons(admin_and_gateway, page):
    _, gateway, api_key = admin_and_gateway
    auditor = UserFactory()
    MembershipFactory(user=auditor, resource_group=gateway.resource_group, role=Role.AUDITOR)
    sign_in(page, auditor)

    page.goto(f"/gateways/{gateway.pk}/?tab=keys")
    expect(page.get_by_role("row").filter(has_text="support-bot key")).to_contain_text(api_key.prefix)
    expect(page.get_by_role("group", name="Gateway actions")).to_have_count(0)
    for label in ("Manage token quota", "Duplicate", "Delete", "Create API key", "Edit budget"):
        expect(page.get_by_role("button", name=label)).to_have_count(0)
    expect(page.locator("dialog")).to_have_count(0)

    page.goto("/api-keys/")
    expect(page.get_by_role("row").filter(has_text="support-bot key")).to_be_visible()
    for label in ("Edit", "Rotate", "Revoke", "Create API key"):
        expect(page.get_by_role("button", name=label)).to_have_count(0)
