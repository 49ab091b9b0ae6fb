"""The console's limits in a real browser (Debian's Chromium through Playwright) against a live
aigw server: an admin gives an API key a spend budget in the Edit budget dialog and sets the
gateway's TPM on the Limits tab, both saved in place with htmx, and is told what is wrong.

Screenshots 12 to 14 are saved to docs/screenshots/ with AIGW_SCREENSHOTS=1.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from gateway.models import Role
from gateway.setup import gateway_create
from keys.models import ApiKeyStatus, SuspendedReason
from keys.services import api_key_create
from quotas.models import RateLimit, RefreshPeriod, SpendBudget
from quotas.periods import window_start
from quotas.services import spend_budget_create, token_quota_set
from tests.e2e.test_console_create_gateway import screenshot, sign_in
from tests.factories import MembershipFactory, ResourceGroupFactory, UsageEventFactory, UserFactory

pytestmark = pytest.mark.browser

TPM_ERROR = "Enter a positive whole number of tokens per minute, or tick Unlimited TPM."
BUDGET_ERROR = "Enter a spend budget of at least 1 USD."


def spend(api_key, usd: str, tokens: int = 1_000, at=None) -> None:
    UsageEventFactory(api_key=api_key, created_at=at or timezone.now(), total_tokens=tokens, cost_usd=Decimal(usd))


@pytest.fixture
def admin_and_gateway(live):
    user = UserFactory()
    group = ResourceGroupFactory(name="support-team")
    MembershipFactory(user=user, resource_group=group, role=Role.ADMIN)
    gateway, api_key, _ = gateway_create(resource_group=group, name="support-bot")
    return user, gateway, api_key


def open_tab(page: Page, gateway, name: str) -> None:
    page.goto(f"/gateways/{gateway.pk}/")
    page.get_by_role("tab", name=name).click()
    expect(page.get_by_role("tab", name=name)).to_have_attribute("aria-selected", "true")


def test_an_admin_sets_a_key_budget_and_sees_it_without_a_reload(admin_and_gateway, page):
    user, gateway, api_key = admin_and_gateway
    spend(api_key, "0.52")
    spend(api_key, "0.52")
    batch, _ = api_key_create(gateway=gateway, name="batch-jobs")
    spend_budget_create(api_key=batch, limit_usd=50, refresh_period=RefreshPeriod.WEEKLY)
    spend(batch, "41.3")
    paused, _ = api_key_create(gateway=gateway, name="nightly-eval")
    paused.status, paused.suspended_reason = ApiKeyStatus.SUSPENDED, SuspendedReason.TOKEN_QUOTA
    paused.save()

    sign_in(page, user)
    open_tab(page, gateway, "API keys")
    row = page.get_by_role("row").filter(has_text="support-bot key")
    expect(row).to_contain_text("Unlimited quota")
    expect(row).to_contain_text(api_key.prefix)
    expect(page.get_by_role("row").filter(has_text="batch-jobs")).to_contain_text("$41.30 / $50 spent · weekly")
    expect(page.get_by_role("row").filter(has_text="nightly-eval")).to_contain_text("suspended")
    page.evaluate("window.notReloaded = true")

    # The dialog: the budget is off; enabling it enables its fields.
    row.get_by_role("button", name="Edit budget").click()
    dialog = page.get_by_role("dialog", name="Edit budget")
    switch = dialog.get_by_role("switch", name="Enable budget")
    expect(switch).not_to_be_checked()
    limit = dialog.get_by_label("Limit (USD")
    expect(limit).to_be_disabled()
    switch.check()
    expect(limit).to_be_enabled()

    # Below one dollar: the server's reason under the field, the dialog stays open.
    limit.fill("0.5")
    dialog.get_by_role("button", name="Save budget").click()
    expect(dialog.get_by_text(BUDGET_ERROR)).to_be_visible()
    expect(dialog.get_by_label("Limit (USD")).to_have_attribute("aria-invalid", "true")
    assert not SpendBudget.objects.filter(api_key=api_key).exists()

    dialog.get_by_label("Limit (USD").fill("10")
    expect(dialog.get_by_text(BUDGET_ERROR)).to_be_hidden()
    dialog.get_by_label("Refresh period").select_option("monthly")
    screenshot(page, "13-edit-budget-dialog.png", full_page=False)
    dialog.get_by_role("button", name="Save budget").click()

    expect(dialog).to_be_hidden()
    expect(row).to_contain_text("$1.04 / $10 spent · monthly")
    expect(page.locator("#toasts").get_by_text("Budget of support-bot key saved.")).to_be_visible()
    assert page.evaluate("window.notReloaded") is True
    budget = SpendBudget.objects.get(api_key=api_key)
    assert (budget.limit_usd, budget.refresh_period, budget.enforced) == (Decimal(10), "monthly", True)
    screenshot(page, "12-gateway-details-api-keys.png")

    # Disabling archives it: the key is unlimited again, still without a reload.
    row.get_by_role("button", name="Edit budget").click()
    expect(dialog.get_by_role("switch", name="Enable budget")).to_be_checked()
    expect(dialog.get_by_label("Limit (USD")).to_have_value("10")
    dialog.get_by_role("switch", name="Enable budget").uncheck()
    dialog.get_by_role("button", name="Save budget").click()
    expect(dialog).to_be_hidden()
    expect(row).to_contain_text("Unlimited quota")
    assert page.evaluate("window.notReloaded") is True
    budget.refresh_from_db()
    assert budget.archived_at is not None


def test_an_admin_sets_tpm_on_the_limits_tab(admin_and_gateway, page):
    user, gateway, api_key = admin_and_gateway
    token_quota_set(gateway=gateway, limit_tokens=5_000_000, refresh_period=RefreshPeriod.MONTHLY)
    spend_budget_create(gateway=gateway, limit_usd=200, refresh_period=RefreshPeriod.MONTHLY)
    spend(api_key, "12.1", tokens=1_248_800, at=window_start(RefreshPeriod.MONTHLY, timezone.now()))
    spend(api_key, "0.3", tokens=1_200)

    sign_in(page, user)
    open_tab(page, gateway, "Limits")
    expect(page.get_by_text("1,250,000 / 5,000,000 tokens used · resets monthly")).to_be_visible()
    expect(page.get_by_text("$12.40 / $200 spent · monthly")).to_be_visible()
    page.evaluate("window.notReloaded = true")

    card = page.locator("#limit-rate-limit")
    tpm = card.get_by_label("Tokens per minute (TPM)")
    expect(tpm).to_be_disabled()
    card.get_by_label("Unlimited TPM").uncheck()
    expect(tpm).to_be_enabled()
    expect(tpm).to_be_focused()

    # Zero is refused, inline, and nothing is saved.
    tpm.fill("0")
    card.get_by_role("button", name="Save TPM and RPM").click()
    expect(card.get_by_text(TPM_ERROR)).to_be_visible()
    expect(card.get_by_label("Tokens per minute (TPM)")).to_have_attribute("aria-invalid", "true")
    assert not RateLimit.objects.exists()

    card.get_by_label("Tokens per minute (TPM)").fill("20000")
    expect(card.get_by_text(TPM_ERROR)).to_be_hidden()
    card.get_by_role("button", name="Save TPM and RPM").click()
    expect(card.get_by_role("status")).to_have_text("Saved.")
    expect(card.get_by_text(TPM_ERROR)).to_be_hidden()
    expect(page.locator("#toasts").get_by_text("TPM and RPM saved.")).to_be_visible()
    expect(card.get_by_label("Tokens per minute (TPM)")).to_have_value("20000")
    expect(card.get_by_label("Requests per minute (RPM)")).to_be_disabled()
    assert page.evaluate("window.notReloaded") is True
    limit = RateLimit.objects.get(gateway=gateway)
    assert (limit.tokens_per_minute, limit.requests_per_minute) == (20_000, None)
    screenshot(page, "14-gateway-details-limits.png")

    page.reload()
    expect(page.locator("#limit-rate-limit").get_by_label("Tokens per minute (TPM)")).to_have_value("20000")


def test_the_create_dialog_takes_an_optional_spend_budget_and_tpm(live, page):
    user = UserFactory()
    MembershipFactory(user=user, resource_group=ResourceGroupFactory(name="research"), role=Role.OWNER)
    sign_in(page, user)
    page.get_by_role("button", name="Create AI Gateway").click()
    dialog = page.get_by_role("dialog", name="Create AI Gateway")
    dialog.get_by_role("button", name="Next").click()
    dialog.get_by_role("button", name="Next").click()
    dialog.get_by_role("textbox", name="AI gateway name").fill("metered")
    dialog.get_by_role("button", name="Next").click()
    expect(dialog.get_by_role("group", name="More settings")).to_be_visible()

    # Each field is checked before Next moves on; fixing it clears its message.
    budget, tpm = dialog.get_by_label("Spend budget (USD)"), dialog.get_by_label("Tokens per minute (TPM)")
    budget.fill("0.5")
    tpm.fill("0")
    dialog.get_by_role("button", name="Next").click()
    budget_error = "Enter a spend budget of at least 1 USD, or leave it blank for none."
    tpm_error = "Enter a positive whole number of tokens per minute, or leave it blank for none."
    expect(dialog.get_by_text(budget_error)).to_be_visible()
    expect(dialog.get_by_text(tpm_error)).to_be_visible()
    expect(dialog.get_by_role("group", name="More settings")).to_be_visible()
    budget.fill("25")
    tpm.fill("30000")
    dialog.get_by_label("Refresh period").select_option("monthly")
    expect(dialog.get_by_text(budget_error)).to_be_hidden()
    expect(dialog.get_by_text(tpm_error)).to_be_hidden()
    screenshot(page, "15-create-step-4-spend-budget-and-tpm.png", full_page=False)
    dialog.get_by_role("button", name="Next").click()
    dialog.get_by_label("I have read and accept the AI Gateway terms").check()
    dialog.get_by_role("button", name="Create").click()
    expect(dialog.get_by_label("New API key")).to_be_visible()

    budget = SpendBudget.objects.get(gateway__name="metered")
    assert (budget.limit_usd, budget.refresh_period, budget.enforced) == (Decimal(25), "monthly", True)
    assert RateLimit.objects.get(gateway__name="metered").tokens_per_minute == 30_000
