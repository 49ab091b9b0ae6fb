"""Resource groups, members, providers and models in a real browser (Debian's Chromium through
Playwright) against a live aigw server: an owner creates a group, adds a member and changes
their role; an admin adds a provider, tests its connection and adds a model; each with one
invalid input; an auditor sees none of the buttons. Their changes are htmx swaps (no page load).
Screenshots 30 to 36 go to docs/screenshots/."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from gateway.models import Membership, Model, Provider, Role
from tests.e2e.test_console_create_gateway import screenshot, sign_in
from tests.factories import MembershipFactory, ResourceGroupFactory, UserFactory

pytestmark = pytest.mark.browser


def stay_on_this_page(page) -> None:
    """Mark the loaded page; `assert_no_page_load` fails if a full page load has replaced it."""
    page.evaluate("window.aigwSamePage = true")


def assert_no_page_load(page) -> None:
    assert page.evaluate("window.aigwSamePage === true"), "a full page load happened (no htmx swap)"


def test_an_owner_creates_a_group_and_manages_its_members(live, page):
    owner = UserFactory(username="ada")
    UserFactory(username="grace", email="grace@example.com")
    sign_in(page, owner)
    page.get_by_role("banner").get_by_role("link", name="Resource groups").click()
    expect(page.get_by_role("heading", name="You are not in a resource group yet")).to_be_visible()

    page.get_by_role("button", name="Create resource group").click()
    dialog = page.get_by_role("dialog", name="Create resource group")
    expect(dialog.get_by_label("Name")).to_be_focused()  # keyboard focus starts in the form
    dialog.get_by_role("button", name="Create").click()
    dialog = page.get_by_role("dialog", name="Create resource group")
    expect(dialog.get_by_text("Enter a name for the group.")).to_be_visible()
    dialog.get_by_label("Name").fill("support-team")
    dialog.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", name="support-team")).to_be_visible()
    expect(page.locator(".toast")).to_contain_text("you are its owner")
    stay_on_this_page(page)

    invite = page.get_by_role("form", name="Add a member")
    invite.get_by_label("Add a member").fill("nobody@example.com")
    invite.get_by_role("button", name="Add member").click()
    expect(page.get_by_text("No user has this username or email")).to_be_visible()
    invite = page.get_by_role("form", name="Add a member")
    invite.get_by_label("Add a member").fill("grace@example.com")
    invite.get_by_label("Role").select_option("developer")
    invite.get_by_role("button", name="Add member").click()
    grace = page.locator('tr[data-member="grace"]')
    expect(grace.get_by_label("Role of grace")).to_have_value("developer")
    screenshot(page, "31-group-members.png")

    grace.get_by_label("Role of grace").select_option("admin")
    grace.get_by_role("button", name="Save").click()
    expect(page.locator('tr[data-member="grace"]').get_by_label("Role of grace")).to_have_value("admin")
    expect(page.locator(".toast", has_text="grace is now admin.")).to_be_visible()
    # The last owner cannot step down.
    ada = page.locator('tr[data-member="ada"]')
    ada.get_by_label("Role of ada").select_option("viewer")
    ada.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_contain_text("at least one owner")
    assert Membership.objects.get(user=owner).role == Role.OWNER

    page.on("dialog", lambda confirm: confirm.accept())
    page.locator('tr[data-member="grace"]').get_by_role("button", name="Remove grace").click()
    expect(page.locator('tr[data-member="grace"]')).to_have_count(0)

    page.get_by_role("button", name="Rename").click()
    dialog = page.get_by_role("dialog", name="Rename resource group")
    dialog.get_by_label("Name").fill("")
    dialog.get_by_role("button", name="Rename").click()
    expect(dialog.get_by_text("Enter a name for the group.")).to_be_visible()
    dialog.get_by_label("Name").fill("support")
    dialog.get_by_role("button", name="Rename").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("heading", name="support", exact=True)).to_be_visible()
    expect(page).to_have_title("support · aigw")
    assert_no_page_load(page)  # every change above was an htmx swap
    page.get_by_role("banner").get_by_role("link", name="Resource groups").click()
    screenshot(page, "30-groups.png")


def test_a_platform_admin_adds_a_provider_tests_it_and_adds_a_model(live, page, fake_upstream):
    admin = UserFactory(is_staff=True)  # a platform admin: the only one who manages providers
    sign_in(page, admin)
    page.get_by_role("banner").get_by_role("link", name="Providers").click()
    expect(page.locator('tr[data-provider="mock"]')).to_be_visible()

    page.get_by_role("button", name="Add provider").click()
    dialog = page.get_by_role("dialog", name="Add provider")
    dialog.get_by_label("Name").fill("openai-prod")
    dialog.get_by_label("Base URL").fill("not a url")
    dialog.get_by_label("API key of the provider").fill("sk-never-shown")
    dialog.get_by_role("button", name="Add provider").click()
    dialog = page.get_by_role("dialog", name="Add provider")
    expect(dialog.get_by_text("Enter a valid URL.")).to_be_visible()
    dialog.get_by_label("Base URL").fill("http://127.0.0.1:9/v1")
    dialog.get_by_label("API key of the provider").fill("sk-never-shown")
    screenshot(page, "34-add-provider.png", full_page=False)
    dialog.get_by_role("button", name="Add provider").click()
    expect(page.get_by_role("heading", name="openai-prod")).to_be_visible()
    assert "sk-never-shown" not in page.content()
    assert Provider.objects.get(name="openai-prod").get_credential() == "sk-never-shown"

    stay_on_this_page(page)
    page.get_by_role("button", name="Test connection").click()
    expect(page.locator("[data-connection]")).to_contain_text("Could not connect")

    page.get_by_role("button", name="Add model").click()
    dialog = page.get_by_role("dialog", name="Add model")
    dialog.get_by_label("Name (what applications ask for)").fill("gpt-4o-mini")
    dialog.get_by_label("Upstream model").fill("gpt-4o-mini")
    expect(dialog.locator("[data-default-prices]")).to_contain_text("input 0.15")
    dialog.get_by_label("Output").fill("-2")
    dialog.get_by_role("button", name="Add model").click()
    dialog = page.get_by_role("dialog", name="Add model")
    expect(dialog.get_by_text("A price cannot be negative.")).to_be_visible()
    dialog.get_by_label("Output").fill("")
    screenshot(page, "36-add-model.png", full_page=False)
    dialog.get_by_role("button", name="Add model").click()
    row = page.locator('tr[data-model="gpt-4o-mini"]')
    expect(row).to_contain_text("0.15")
    expect(row).to_contain_text("genai-prices")
    assert Model.objects.get(name="gpt-4o-mini").price_source == Model.PriceSource.GENAI_PRICES
    expect(page.get_by_role("dialog", name="Add model")).to_be_hidden()
    expect(page.locator(".toast", has_text="Model gpt-4o-mini added")).to_be_visible()
    assert_no_page_load(page)
    screenshot(page, "35-provider-models.png")
    page.get_by_role("banner").get_by_role("link", name="Providers").click()
    screenshot(page, "33-providers.png")


def test_an_auditor_sees_groups_and_providers_without_a_single_edit_button(live, page):
    group = ResourceGroupFactory(name="support-team")
    auditor = UserFactory()
    MembershipFactory(user=auditor, resource_group=group, role=Role.AUDITOR)
    MembershipFactory(user=UserFactory(username="owner1"), resource_group=group, role=Role.OWNER)
    sign_in(page, auditor)

    page.goto(f"/groups/{group.pk}/")
    expect(page.locator('tr[data-member="owner1"]')).to_contain_text("owner")
    for name in ("Add member", "Rename", "Delete", "Save", "Remove owner1"):
        expect(page.get_by_role("button", name=name)).to_have_count(0)
    page.goto("/providers/")
    expect(page.locator('tr[data-provider="mock"]')).to_be_visible()
    for name in ("Add provider", "Test connection"):
        expect(page.get_by_role("button", name=name)).to_have_count(0)
    response = page.request.post(f"/groups/{group.pk}/rename/", form={"name": "mine"})
    assert response.status == 403
