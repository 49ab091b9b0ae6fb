"""The console's resource groups, members, providers and models pages (SPEC §1, §2): what each
role sees and may do, the last-owner rule, credentials that never come back, the test
connection against a real HTTP server, and model prices from the pricing library or typed."""

from __future__ import annotations

import json
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from core.models import AuditEvent
from gateway.models import Membership, Model, Provider, ProviderKind, Role
from gateway.services import provider_create
from gateway.setup import gateway_create
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


# htmx: the same forms answer with the page's fragment, a toast, or the next page -------------

HTMX = {"HX-Request": "true"}


def toast_of(response) -> str:
    """The message of the `aigw:toast` event the response sends (HX-Trigger)."""
    return json.loads(response["HX-Trigger"])["aigw:toast"]["message"]


def fragment_of(response) -> str:
    body = response.content.decode()
    assert "<html" not in body and "<body" not in body, "htmx gets a fragment, not the whole page"
    return body


def test_with_htmx_an_owner_adds_a_member_changes_their_role_and_removes_them_in_the_members_card(client, group):
    login(client, group, Role.OWNER)
    grace = UserFactory(username="grace", email="grace@example.com")

    added = client.post(f"/groups/{group.pk}/members/", {"user": "grace", "role": "developer"}, headers=HTMX)
    assert added.status_code == 200 and toast_of(added) == "grace added as developer."
    assert 'id="group-members"' in fragment_of(added) and 'data-member="grace"' in added.content.decode()

    changed = client.post(f"/groups/{group.pk}/members/{grace.pk}/role/", {"role": "admin"}, headers=HTMX)
    body = fragment_of(changed)
    assert changed.status_code == 200 and toast_of(changed) == "grace is now admin."
    assert Membership.objects.get(user=grace).role == Role.ADMIN
    assert '<option value="admin" selected>' in body and "2 members" in body

    removed = client.post(f"/groups/{group.pk}/members/{grace.pk}/remove/", headers=HTMX)
    assert removed.status_code == 200 and toast_of(removed) == "grace removed from support-team."
    assert 'data-member="grace"' not in fragment_of(removed)
    assert not Membership.objects.filter(user=grace).exists()


def test_with_htmx_errors_come_back_inline_in_the_members_card_with_400(client, group):
    owner = login(client, group, Role.OWNER)

    unknown = client.post(f"/groups/{group.pk}/members/", {"user": "nobody", "role": "viewer"}, headers=HTMX)
    demote = client.post(f"/groups/{group.pk}/members/{owner.pk}/role/", {"role": "viewer"}, headers=HTMX)
    remove = client.post(f"/groups/{group.pk}/members/{owner.pk}/remove/", headers=HTMX)

    assert unknown.status_code == 400 and "No user has this username or email" in fragment_of(unknown)
    assert 'id="group-members"' in unknown.content.decode() and "HX-Trigger" not in unknown
    assert demote.status_code == 400 and "at least one owner" in fragment_of(demote)
    assert remove.status_code == 400 and 'role="alert"' in fragment_of(remove)
    assert Membership.objects.get(user=owner).role == Role.OWNER


def test_with_htmx_an_owner_who_steps_down_or_leaves_gets_the_page_again(client, group):
    owner = login(client, group, Role.OWNER)
    MembershipFactory(resource_group=group, role=Role.OWNER)

    stepped_down = client.post(f"/groups/{group.pk}/members/{owner.pk}/role/", {"role": "viewer"}, headers=HTMX)
    assert stepped_down["HX-Redirect"] == f"/groups/{group.pk}/"  # their buttons are gone
    other = ResourceGroupFactory(name="other")
    MembershipFactory(resource_group=other, user=owner, role=Role.OWNER)
    MembershipFactory(resource_group=other, role=Role.OWNER)
    left = client.post(f"/groups/{other.pk}/members/{owner.pk}/remove/", headers=HTMX)
    assert left["HX-Redirect"] == "/groups/"


def test_with_htmx_creating_renaming_and_deleting_a_group(client):
    login(client)

    empty = client.post("/groups/", {"name": ""}, headers=HTMX)
    assert empty.status_code == 400 and "Enter a name for the group." in fragment_of(empty)
    assert 'hx-post="/groups/"' in empty.content.decode()
    created = client.post("/groups/", {"name": "research"}, headers=HTMX)
    group = Membership.objects.get().resource_group
    assert created.status_code == 200 and created["HX-Redirect"] == f"/groups/{group.pk}/"

    renamed = client.post(f"/groups/{group.pk}/rename/", {"name": "lab"}, headers=HTMX)
    body = fragment_of(renamed)
    assert renamed.status_code == 200 and toast_of(renamed) == "Resource group renamed to lab."
    assert json.loads(renamed["HX-Trigger-After-Settle"])["aigw:close-dialog"] == {"id": "rename-group-dialog"}
    assert (
        "<h1>lab</h1>" in body and 'id="group-head" hx-swap-oob="true"' in body and "Type <strong>lab</strong>" in body
    )
    taken = ResourceGroupFactory(name="taken")
    clash = client.post(f"/groups/{group.pk}/rename/", {"name": taken.name}, headers=HTMX)
    assert clash.status_code == 400 and "already exists" in fragment_of(clash)

    wrong = client.post(f"/groups/{group.pk}/delete/", {"confirm_name": "lb"}, headers=HTMX)
    assert wrong.status_code == 400 and "Type lab exactly" in fragment_of(wrong)
    deleted = client.post(f"/groups/{group.pk}/delete/", {"confirm_name": "lab"}, headers=HTMX)
    assert deleted["HX-Redirect"] == "/groups/" and not type(group).objects.filter(pk=group.pk).exists()
    assert "Resource group lab deleted." in client.get("/groups/").content.decode()  # the toast on the next page


def test_with_htmx_a_platform_admin_adds_edits_and_deletes_models_in_the_models_card(client):
    login(client, is_staff=True)
    provider = provider_create(name="openai", kind=ProviderKind.OPENAI, base_url="https://api.openai.com/v1")

    negative = client.post(
        f"/providers/{provider.pk}/models/", {"name": "neg", "input_price_per_mtok": "-1"}, headers=HTMX
    )
    assert negative.status_code == 400 and "A price cannot be negative." in fragment_of(negative)
    added = client.post(f"/providers/{provider.pk}/models/", {"name": "gpt-4o-mini"}, headers=HTMX)
    body = fragment_of(added)
    assert added.status_code == 200 and toast_of(added) == "Model gpt-4o-mini added (genai-prices library)."
    assert json.loads(added["HX-Trigger-After-Settle"])["aigw:close-dialog"] == {"id": "add-model-dialog"}
    assert 'id="provider-models" hx-swap-oob="true"' in body and 'data-model="gpt-4o-mini"' in body
    model = Model.objects.get(name="gpt-4o-mini")

    edit_url = f"/providers/{provider.pk}/models/{model.pk}/"
    bad = client.post(edit_url, {"upstream_model": "gpt-4o-mini", "output_price_per_mtok": "-3"}, headers=HTMX)
    assert bad.status_code == 400 and "Output: A price cannot be negative." in fragment_of(bad)
    assert '<details class="model-edit" open>' in bad.content.decode()  # the row's form stays open
    assert 'name="output_price_per_mtok" value="-3" aria-invalid="true"' in bad.content.decode()  # as typed
    edited = client.post(edit_url, {"upstream_model": "gpt-4o-mini", "input_price_per_mtok": "0.2"}, headers=HTMX)
    assert edited.status_code == 200 and toast_of(edited) == "Model gpt-4o-mini saved."
    assert 'id="provider-models"' in fragment_of(edited)
    model.refresh_from_db()
    assert model.input_price_per_mtok == Decimal("0.2")

    gateway, _, _ = gateway_create(resource_group=ResourceGroupFactory(), name="helpdesk", allowed_models=[model])
    in_use = client.post(f"{edit_url}delete/", headers=HTMX)
    assert in_use.status_code == 400 and gateway.name in fragment_of(in_use)
    gateway.allowed_models.clear()
    deleted = client.post(f"{edit_url}delete/", headers=HTMX)
    assert deleted.status_code == 200 and toast_of(deleted) == "Model gpt-4o-mini deleted."
    assert 'data-model="gpt-4o-mini"' not in fragment_of(deleted)


def test_with_htmx_a_platform_admin_adds_edits_and_deletes_a_provider(client):
    login(client, is_staff=True)

    bad = client.post("/providers/", {"name": "x", "kind": "openai", "base_url": "not a url"}, headers=HTMX)
    assert bad.status_code == 400 and "Enter a valid URL" in fragment_of(bad)
    added = client.post(
        "/providers/",
        {"name": "vllm", "kind": "openai", "base_url": "http://10.0.0.5/v1", "credential": SECRET},
        headers=HTMX,
    )
    provider = Provider.objects.get(name="vllm")
    assert added["HX-Redirect"] == f"/providers/{provider.pk}/"

    edit_url = f"/providers/{provider.pk}/edit/"
    empty = client.post(edit_url, {"name": "", "base_url": "http://10.0.0.5/v1"}, headers=HTMX)
    assert empty.status_code == 400 and "Enter a name for the provider." in fragment_of(empty)
    moved = client.post(edit_url, {"name": "vllm-b", "base_url": "http://10.0.0.6/v1"}, headers=HTMX)
    body = fragment_of(moved)
    assert toast_of(moved) == "Provider vllm-b saved. Its base URL changed, so type its credential again."
    assert 'id="provider-summary" hx-swap-oob="true"' in body and "http://10.0.0.6/v1" in body and SECRET not in body

    assert client.post(f"/providers/{provider.pk}/models/", {"name": "llama"}, headers=HTMX).status_code == 200
    kept = client.post(f"/providers/{provider.pk}/delete/", headers=HTMX)
    assert (
        kept.status_code == 400
        and 'id="provider-summary"' in fragment_of(kept)
        and 'role="alert"' in kept.content.decode()
    )
    Model.objects.filter(provider=provider).delete()
    deleted = client.post(f"/providers/{provider.pk}/delete/", headers=HTMX)
    assert deleted["HX-Redirect"] == "/providers/" and not Provider.objects.filter(pk=provider.pk).exists()
