"""The console's resource groups, members, providers and models pages (SPEC §1, §2): what each
role sees and may do, the last-owner rule, credentials that never come back, the test
connection against a real HTTP server, and model prices from the pricing library or typed."""

from __future__ import annotations

import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from core.models import AuditEvent
from gateway.models import Membership, Model, Provider, ProviderKind, Role
from gateway.services import gateway_create, provider_create
from tests.factories import MembershipFactory, ResourceGroupFactory, UserFactory

pytestmark = pytest.mark.django_db

SECRET = "sk-upstream-secret-123"


def login(client, group=None, role=None, **user_fields):
    user = UserFactory(**user_fields)
    if group is not None:
        MembershipFactory(user=user, resource_group=group, role=role)
    client.force_login(user)
    return user


@pytest.fixture
def group():
    return ResourceGroupFactory(name="support-team")


# Resource groups and members -----------------------------------------------------------------


def test_any_user_creates_a_group_and_becomes_its_owner(client):
    user = login(client)

    response = client.post("/groups/", {"name": "research"})

    membership = Membership.objects.get(user=user)
    assert response.status_code == 302 and response["Location"] == f"/groups/{membership.resource_group_id}/"
    assert membership.role == Role.OWNER and membership.resource_group.name == "research"
    taken = client.post("/groups/", {"name": "research"})
    assert taken.status_code == 400 and "already exists" in taken.content.decode()
    assert "data-open-on-load" in taken.content.decode()  # the dialog opens again with the error


def test_the_list_shows_only_my_groups_with_my_role(client, group):
    login(client, group, Role.AUDITOR)
    ResourceGroupFactory(name="someone-elses")
    gateway_create(resource_group=group, name="helpdesk")

    body = client.get("/groups/").content.decode()

    assert "support-team" in body and "someone-elses" not in body and "role-auditor" in body


def test_an_owner_invites_by_email_changes_a_role_and_removes_a_member(client, group):
    owner = login(client, group, Role.OWNER)
    grace = UserFactory(username="grace", email="Grace@Example.com")

    assert (
        client.post(f"/groups/{group.pk}/members/", {"user": "grace@example.com", "role": "admin"}).status_code == 302
    )
    assert Membership.objects.get(user=grace).role == Role.ADMIN
    unknown = client.post(f"/groups/{group.pk}/members/", {"user": "nobody", "role": "viewer"})
    assert unknown.status_code == 400 and "No user has this username or email" in unknown.content.decode()

    assert client.post(f"/groups/{group.pk}/members/{grace.pk}/role/", {"role": "auditor"}).status_code == 302
    assert Membership.objects.get(user=grace).role == Role.AUDITOR
    assert client.post(f"/groups/{group.pk}/members/{grace.pk}/remove/").status_code == 302
    assert not Membership.objects.filter(user=grace).exists()
    assert (
        AuditEvent.objects.filter(action__in=["member.add", "member.update", "member.remove"], actor=owner).count() == 3
    )


def test_the_last_owner_keeps_the_role_with_a_clear_message(client, group):
    owner = login(client, group, Role.OWNER)

    demote = client.post(f"/groups/{group.pk}/members/{owner.pk}/role/", {"role": "admin"})
    remove = client.post(f"/groups/{group.pk}/members/{owner.pk}/remove/")

    assert demote.status_code == 400 and "at least one owner" in demote.content.decode()
    assert remove.status_code == 400
    assert Membership.objects.get(user=owner).role == Role.OWNER


def test_rename_and_delete_by_typing_the_name_and_a_group_with_gateways_stays(client, group):
    login(client, group, Role.OWNER)

    assert client.post(f"/groups/{group.pk}/rename/", {"name": "support"}).status_code == 302
    group.refresh_from_db()
    assert group.name == "support"
    wrong = client.post(f"/groups/{group.pk}/delete/", {"confirm_name": "suport"})
    assert wrong.status_code == 400 and "Type support exactly" in wrong.content.decode()
    gateway_create(resource_group=group, name="helpdesk")
    kept = client.post(f"/groups/{group.pk}/delete/", {"confirm_name": "support"})
    assert kept.status_code == 400 and "gateways" in kept.content.decode()
    empty = ResourceGroupFactory(name="empty")
    MembershipFactory(user=Membership.objects.get(resource_group=group).user, resource_group=empty, role=Role.OWNER)
    assert client.post(f"/groups/{empty.pk}/delete/", {"confirm_name": "empty"}).status_code == 302
    assert not type(group).objects.filter(pk=empty.pk).exists()


@pytest.mark.parametrize("role", [Role.ADMIN, Role.DEVELOPER, Role.AUDITOR, Role.VIEWER])
def test_members_who_are_not_owners_read_the_group_and_may_not_change_it(client, group, role):
    login(client, group, role)
    other = UserFactory()
    MembershipFactory(user=other, resource_group=group, role=Role.VIEWER)

    body = client.get(f"/groups/{group.pk}/").content.decode()

    assert other.username in body
    assert "Add member" not in body and "Rename" not in body and 'name="role"' not in body
    for url, data in (
        (f"/groups/{group.pk}/members/", {"user": other.username, "role": "owner"}),
        (f"/groups/{group.pk}/members/{other.pk}/role/", {"role": "owner"}),
        (f"/groups/{group.pk}/members/{other.pk}/remove/", {}),
        (f"/groups/{group.pk}/rename/", {"name": "mine"}),
        (f"/groups/{group.pk}/delete/", {"confirm_name": group.name}),
    ):
        assert client.post(url, data).status_code == 403, url
    assert Membership.objects.get(user=other).role == Role.VIEWER


def test_another_groups_page_is_a_404(client, group):
    login(client, ResourceGroupFactory(), Role.OWNER)
    assert client.get(f"/groups/{group.pk}/").status_code == 404
    assert client.post(f"/groups/{group.pk}/rename/", {"name": "x"}).status_code == 404


# Providers and models --------------------------------------------------------------------------


class _ModelsApi(BaseHTTPRequestHandler):
    """GET /v1/models: 200 with the right bearer credential, 401 otherwise."""

    seen: list[str] = []

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Authorization", ""))
        ok = self.path == "/v1/models" and self.headers.get("Authorization") == f"Bearer {SECRET}"
        self.send_response(200 if ok else 401)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"data": []}')

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def models_api():
    server = HTTPServer(("127.0.0.1", 0), _ModelsApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()


def test_a_platform_admin_adds_a_provider_whose_credential_never_comes_back(client, group):
    login(client, is_staff=True)

    response = client.post(
        "/providers/",
        {"name": "openai-prod", "kind": "openai", "base_url": "https://api.openai.com/v1/", "credential": SECRET},
    )

    provider = Provider.objects.get(name="openai-prod")
    assert response.status_code == 302 and provider.get_credential() == SECRET
    for url in ("/providers/", f"/providers/{provider.pk}/"):
        body = client.get(url).content.decode()
        assert SECRET not in body and "openai-prod" in body
    bad = client.post("/providers/", {"name": "x", "kind": "openai", "base_url": "not a url"})
    assert bad.status_code == 400 and "Enter a valid URL" in bad.content.decode()


def test_editing_a_provider_keeps_the_credential_unless_a_new_one_is_typed_or_the_url_changes(client, group):
    login(client, is_staff=True)
    provider = provider_create(name="vllm", kind=ProviderKind.OPENAI, base_url="http://10.0.0.5/v1", credential=SECRET)

    client.post(
        f"/providers/{provider.pk}/edit/", {"name": "vllm-a", "base_url": "http://10.0.0.5/v1", "credential": ""}
    )
    provider.refresh_from_db()
    assert provider.name == "vllm-a" and provider.get_credential() == SECRET
    moved = client.post(
        f"/providers/{provider.pk}/edit/",
        {"name": "vllm", "base_url": "http://10.0.0.6/v1", "credential": ""},
        follow=True,
    )
    provider.refresh_from_db()
    assert provider.base_url == "http://10.0.0.6/v1" and provider.get_credential() == ""
    assert "type its credential again" in moved.content.decode()
    client.post(
        f"/providers/{provider.pk}/edit/", {"name": "vllm", "base_url": "http://10.0.0.6/v1", "credential": "new"}
    )
    provider.refresh_from_db()
    assert provider.get_credential() == "new"


def test_test_connection_reports_success_a_refused_credential_and_no_answer(client, group, models_api):
    login(client, is_staff=True)
    good = provider_create(name="good", kind=ProviderKind.OPENAI, base_url=models_api, credential=SECRET)
    bad = provider_create(name="bad", kind=ProviderKind.OPENAI, base_url=models_api, credential="wrong")
    down = provider_create(name="down", kind=ProviderKind.OPENAI, base_url="http://127.0.0.1:9/v1", credential=SECRET)
    htmx = {"HX-Request": "true"}

    ok = client.post(f"/providers/{good.pk}/test/", headers=htmx).content.decode()
    refused = client.post(f"/providers/{bad.pk}/test/", headers=htmx).content.decode()
    unreachable = client.post(f"/providers/{down.pk}/test/", headers=htmx).content.decode()

    assert "Connected · HTTP 200 in" in ok and "connection ok" in ok
    assert "HTTP 401: the credential was refused." in refused
    assert "Could not connect: ConnectError." in unreachable
    assert f"Bearer {SECRET}" in _ModelsApi.seen
    assert all(SECRET not in body for body in (ok, refused, unreachable))


def test_a_model_takes_the_default_prices_or_the_ones_typed(client, group):
    login(client, is_staff=True)
    provider = provider_create(name="openai", kind=ProviderKind.OPENAI, base_url="https://api.openai.com/v1")

    hint = client.get(
        f"/providers/{provider.pk}/models/default-prices/", {"upstream_model": "gpt-4o-mini"}
    ).content.decode()
    client.post(f"/providers/{provider.pk}/models/", {"name": "gpt-4o-mini"})
    client.post(
        f"/providers/{provider.pk}/models/",
        {"name": "house-model", "input_price_per_mtok": "0.5", "output_price_per_mtok": "1.25"},
    )
    negative = client.post(f"/providers/{provider.pk}/models/", {"name": "neg", "input_price_per_mtok": "-1"})

    default = Model.objects.get(name="gpt-4o-mini")
    assert default.price_source == Model.PriceSource.GENAI_PRICES and default.input_price_per_mtok == Decimal("0.15")
    assert "input 0.15" in hint
    custom = Model.objects.get(name="house-model")
    assert (custom.price_source, custom.input_price_per_mtok, custom.output_price_per_mtok) == (
        Model.PriceSource.CUSTOM,
        Decimal("0.5"),
        Decimal("1.25"),
    )
    assert negative.status_code == 400 and "A price cannot be negative." in negative.content.decode()
    assert not Model.objects.filter(name="neg").exists()


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN, Role.DEVELOPER, Role.AUDITOR, Role.VIEWER])
def test_group_roles_read_providers_without_buttons_and_get_403_on_changes(client, group, role):
    login(client, group, role)
    provider = provider_create(name="openai", kind=ProviderKind.OPENAI, base_url="https://api.openai.com/v1")

    listing = client.get("/providers/").content.decode()
    detail = client.get(f"/providers/{provider.pk}/").content.decode()

    assert "openai" in listing and "Add provider" not in listing and "Test connection" not in listing
    assert "Add model" not in detail and "Edit" not in detail
    assert (
        client.post("/providers/", {"name": "x", "kind": "openai", "base_url": "https://x.example/v1"}).status_code
        == 403
    )
    assert client.post(f"/providers/{provider.pk}/test/").status_code == 403
    edit = {"name": "openai", "base_url": "http://127.0.0.1:9/v1"}
    assert client.post(f"/providers/{provider.pk}/edit/", edit).status_code == 403
    assert client.post(f"/providers/{provider.pk}/models/", {"name": "m"}).status_code == 403
    assert client.post(f"/providers/{provider.pk}/delete/").status_code == 403
    provider.refresh_from_db()
    assert provider.base_url == "https://api.openai.com/v1"


def test_a_user_in_no_group_reads_the_catalog_without_buttons(client):
    login(client)
    provider = provider_create(name="openai", kind=ProviderKind.OPENAI, base_url="https://api.openai.com/v1")
    listing = client.get("/providers/")
    assert listing.status_code == 200 and "openai" in listing.content.decode()
    assert "Add provider" not in listing.content.decode()
    assert client.post(f"/providers/{provider.pk}/test/").status_code == 403
