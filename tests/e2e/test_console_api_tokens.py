"""Personal API tokens in a real browser (Debian's Chromium through Playwright) against a live
aigw server: a user creates a token, copies it from the show-once panel, uses it with the
management API, and revokes it. Screenshot 16 is saved with AIGW_SCREENSHOTS=1."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.test_console_create_gateway import screenshot, sign_in
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.browser


def test_a_user_creates_uses_and_revokes_a_personal_api_token(live, page: Page):
    user = UserFactory()
    MembershipFactory(user=user)
    sign_in(page, user)

    page.get_by_role("link", name="API tokens").click()
    expect(page.get_by_role("heading", name="Personal API tokens")).to_be_visible()
    page.get_by_label("Name").fill("CI pipeline")
    page.get_by_role("button", name="Create token").click()

    field = page.get_by_label("New personal API token")
    expect(field).to_be_visible()
    expect(page.get_by_text("It cannot be shown again.")).to_be_visible()
    secret = field.input_value()
    assert secret.startswith("aigwp_")
    screenshot(page, "16-personal-api-token-shown-once.png")

    api = httpx.get(f"{live.url}/api/v1/gateways", headers={"Authorization": f"Bearer {secret}"})
    assert api.status_code == 200

    page.reload()
    expect(page.get_by_label("New personal API token")).to_have_count(0)
    row = page.get_by_role("row", name="CI pipeline")
    expect(row).to_contain_text(secret[:12])
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Revoke").click()
    expect(page.get_by_text("is revoked")).to_be_visible()
    expect(page.get_by_role("row", name="CI pipeline")).to_contain_text("Revoked")

    refused = httpx.get(f"{live.url}/api/v1/gateways", headers={"Authorization": f"Bearer {secret}"})
    assert refused.status_code == 401
