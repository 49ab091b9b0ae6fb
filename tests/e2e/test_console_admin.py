"""What tests/e2e/test_console_groups.py leaves open, in a real browser (Debian's Chromium through
Playwright) against a live aigw server: a successful Test connection (the unreachable case is
there), renaming and deleting a group by typing its name, each with one invalid input, and a
provider that models route to staying put. Screenshot 32 goes to docs/screenshots/."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from playwright.sync_api import expect

from gateway.models import Provider, ProviderKind, ResourceGroup, Role
from gateway.services import model_create, provider_create
from tests.e2e.test_console_create_gateway import screenshot, sign_in
from tests.factories import MembershipFactory, ResourceGroupFactory, UserFactory

pytestmark = pytest.mark.browser

SECRET = "sk-e2e-console-admin-456"


class _ModelsApi(BaseHTTPRequestHandler):
    """GET /v1/models: 200 with the right bearer credential, 401 otherwise."""

    def do_GET(self) -> None:
        ok = self.path == "/v1/models" and self.headers.get("Authorization") == f"Bearer {SECRET}"
        self.send_response(200 if ok else 401)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"data": []}')

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def models_api() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _ModelsApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()


def test_a_platform_admin_tests_a_connection_that_answers_and_one_that_refuses_the_credential(live, page, models_api):
    admin = UserFactory(is_staff=True)  # a platform admin: the only one who manages providers
    good = provider_create(name="vllm-good", kind=ProviderKind.OPENAI, base_url=models_api, credential=SECRET)
    bad = provider_create(name="vllm-bad", kind=ProviderKind.OPENAI, base_url=models_api, credential="wrong")
    sign_in(page, admin)

    page.goto(f"/providers/{good.pk}/")
    page.get_by_role("button", name="Test connection").click()
    expect(page.locator("[data-connection]")).to_contain_text("Connected · HTTP 200 in")
    assert SECRET not in page.content()

    page.goto(f"/providers/{bad.pk}/")
    page.get_by_role("button", name="Test connection").click()
    expect(page.locator("[data-connection]")).to_contain_text("HTTP 401: the credential was refused.")


def test_a_provider_that_models_route_to_stays_with_a_clear_message(live, page):
    admin = UserFactory(is_staff=True)  # a platform admin: the only one who manages providers
    provider = provider_create(name="routed", kind=ProviderKind.OPENAI, base_url="https://routed.example/v1")
    model_create(name="routed-model", provider=provider)
    sign_in(page, admin)

    page.goto(f"/providers/{provider.pk}/")
    page.on("dialog", lambda confirm: confirm.accept())
    page.get_by_role("button", name="Delete", exact=True).first.click()
    expect(page.get_by_role("alert")).to_contain_text("Models route to this provider")
    assert Provider.objects.filter(pk=provider.pk).exists()


def test_an_owner_renames_a_group_and_deletes_it_by_typing_its_name(live, page):
    group = ResourceGroupFactory(name="support-team")
    owner = UserFactory()
    MembershipFactory(user=owner, resource_group=group, role=Role.OWNER)
    sign_in(page, owner)
    page.goto(f"/groups/{group.pk}/")

    page.get_by_role("button", name="Rename").click()
    dialog = page.get_by_role("dialog", name="Rename resource group")
    dialog.get_by_label("Name").fill("")
    dialog.get_by_role("button", name="Rename").click()
    dialog = page.get_by_role("dialog", name="Rename resource group")
    expect(dialog.get_by_text("Enter a name for the group.")).to_be_visible()
    dialog.get_by_label("Name").fill("helpdesk")
    dialog.get_by_role("button", name="Rename").click()
    expect(page.get_by_role("heading", name="helpdesk")).to_be_visible()

    page.get_by_role("button", name="Delete").first.click()
    dialog = page.get_by_role("dialog", name="Delete resource group")
    dialog.get_by_label("Group name").fill("helpdes")
    dialog.get_by_role("button", name="Delete").click()
    dialog = page.get_by_role("dialog", name="Delete resource group")
    expect(dialog.get_by_text("Type helpdesk exactly to delete this group.")).to_be_visible()
    screenshot(page, "32-delete-group.png", full_page=False)
    dialog.get_by_label("Group name").fill("helpdesk")
    dialog.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("heading", name="Resource groups", level=1)).to_be_visible()
    assert not ResourceGroup.objects.filter(pk=group.pk).exists()
