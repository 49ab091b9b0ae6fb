"""The console by keyboard alone (Debian's Chromium through Playwright): a dialog opens from the
keyboard with focus on its first field, Escape closes it, focus goes back to the button that
opened it, and the page underneath is unchanged."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from gateway.models import Role
from tests.e2e.test_console_create_gateway import sign_in
from tests.factories import MembershipFactory, ResourceGroupFactory, UserFactory

pytestmark = pytest.mark.browser


def test_the_create_dialog_works_from_the_keyboard(live, page):
    user = UserFactory()
    MembershipFactory(user=user, resource_group=ResourceGroupFactory(name="support-team"), role=Role.ADMIN)
    sign_in(page, user)
    page.goto("/gateways/")

    opener = page.get_by_role("button", name="Create AI Gateway")
    opener.focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Create AI Gateway")
    expect(dialog.get_by_role("group", name="Configure token quota")).to_be_visible()
    # Focus is inside the dialog, on a field of the first step, not left on the page.
    expect(dialog.locator("input:focus, select:focus")).to_have_count(1)

    # Space ticks the focused checkbox; Tab moves within the dialog (it is modal).
    unlimited = dialog.get_by_label("Unlimited quota")
    unlimited.focus()
    page.keyboard.press("Space")
    expect(unlimited).not_to_be_checked()
    page.keyboard.press("Tab")
    expect(dialog.locator(":focus")).to_have_count(1)

    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(opener).to_be_focused()
    expect(page.get_by_role("heading", name="No AI gateways yet")).to_be_visible()
