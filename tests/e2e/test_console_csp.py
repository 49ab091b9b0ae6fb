"""Pages that used to need inline script or style work in Chromium under the strict
Content-Security-Policy (the `page` fixture fails a test on any violation)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.test_console_create_gateway import sign_in
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.browser


def test_the_api_docs_render_swagger_ui_with_its_init_script_served_as_a_file(live, page: Page):
    user = UserFactory()
    MembershipFactory(user=user)
    sign_in(page, user)

    page.goto("/api/docs/")

    expect(page.locator(".swagger-ui .info .title")).to_contain_text("aigw management API")
    expect(page.locator(".opblock").first).to_be_visible()


def test_a_locked_sign_in_shows_the_lockout_message_on_the_house_login_page(live, page: Page):
    UserFactory(username="carol")
    page.goto("/accounts/login/")
    for n in range(5):
        page.get_by_label("Username").fill("carol")
        page.get_by_label("Password").fill(f"wrong {n}")
        page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("alert")).to_contain_text(
        "Too many failed sign-ins for this username from your address; try again in 15 minutes"
    )
    expect(page.get_by_label("Username")).to_have_value("carol")
    expect(page.locator(".topbar .brand")).to_be_visible()
