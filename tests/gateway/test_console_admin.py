"""Edges of the console's resource group and provider pages that tests/gateway/test_console_groups.py
leaves open: unknown users, other groups' change URLs, the typed-name confirmation, the last owner,
a provider that models still route to, the mock provider's test connection, and credentials that
never reach a page (not even an attribute)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gateway.models import Membership, Model, Provider, ProviderKind, ResourceGroup, Role
from gateway.services import model_create, provider_create
from tests.factories import ResourceGroupFactory, UserFactory
from tests.support.people import console_login, member_of

pytestmark = pytest.mark.django_db

SECRET = "sk-console-admin-secret-987"


@pytest.fixture
def group_name():
    """The `group` fixture's name, which this module's assertions spell out."""
    return "platform"


def test_inviting_an_unknown_user_is_a_form_error_and_nobody_is_added(client, group):
    console_login(client, group, Role.OWNER)

    response = client.post(f"/groups/{group.pk}/members/", {"user": "nobody@example.com", "role": Role.VIEWER})

    assert response.status_code == 400
    assert "No user has this username or email" in response.content.decode()
    assert Membership.objects.filter(resource_group=group).count() == 1


def test_an_owner_invites_a_user_by_username(client, group):
    console_login(client, group, Role.OWNER)
    colleague = UserFactory(username="ada")

    response = client.post(f"/groups/{group.pk}/members/", {"user": "ada", "role": Role.DEVELOPER})

    assert response.status_code == 302
    assert Membership.objects.get(resource_group=group, user=colleague).role == Role.DEVELOPER
    assert "ada" in client.get(f"/groups/{group.pk}/").content.decode()


def test_the_last_owner_cannot_remove_themselves(client, group):
    owner = console_login(client, group, Role.OWNER)

    response = client.post(f"/groups/{group.pk}/members/{owner.pk}/remove/")

    assert response.status_code == 400
    assert "at least one owner" in response.content.decode()
    assert Membership.objects.get(resource_group=group, user=owner).role == Role.OWNER


def test_a_group_is_deleted_only_when_its_exact_name_is_typed(client, group):
    console_login(client, group, Role.OWNER)

    wrong = client.post(f"/groups/{group.pk}/delete/", {"confirm_name": "platfor"})
    assert wrong.status_code == 400 and "Type platform exactly" in wrong.content.decode()
    assert ResourceGroup.objects.filter(pk=group.pk).exists()

    right = client.post(f"/groups/{group.pk}/delete/", {"confirm_name": "platform"})
    assert right.status_code == 302 and right["Location"] == "/groups/"
    assert not ResourceGroup.objects.filter(pk=group.pk).exists()


def test_another_groups_change_urls_are_404_for_a_non_member(client, group):
    console_login(client, ResourceGroupFactory(name="mine"), Role.OWNER)
    stranger = member_of(group, Role.OWNER)

    for url, data in (
        (f"/groups/{group.pk}/", None),
        (f"/groups/{group.pk}/members/", {"user": "x", "role": Role.VIEWER}),
        (f"/groups/{group.pk}/members/{stranger.pk}/role/", {"role": Role.VIEWER}),
        (f"/groups/{group.pk}/members/{stranger.pk}/remove/", {}),
        (f"/groups/{group.pk}/rename/", {"name": "taken-over"}),
        (f"/groups/{group.pk}/delete/", {"confirm_name": "platform"}),
    ):
        response = client.get(url) if data is None else client.post(url, data)
        assert response.status_code == 404, url
    group.refresh_from_db()
    assert group.name == "platform"


@pytest.mark.parametrize("role", [Role.ADMIN, Role.DEVELOPER, Role.AUDITOR, Role.VIEWER])
def test_members_who_are_not_owners_get_403_on_member_changes(client, group, role):
    console_login(client, group, role)
    owner = member_of(group, Role.OWNER)

    role_change = client.post(f"/groups/{group.pk}/members/{owner.pk}/role/", {"role": Role.VIEWER})
    removal = client.post(f"/groups/{group.pk}/members/{owner.pk}/remove/")
    page = client.get(f"/groups/{group.pk}/").content.decode()

    assert role_change.status_code == 403 and removal.status_code == 403
    assert Membership.objects.get(resource_group=group, user=owner).role == Role.OWNER
    assert "Invite" not in page and "Delete group" not in page


def test_a_provider_that_models_route_to_is_kept_with_a_clear_message(client, group):
    console_login(client, is_staff=True)
    provider = provider_create(name="openai", kind=ProviderKind.OPENAI, base_url="https://api.openai.com/v1")
    model_create(name="gpt-4o-mini", provider=provider)

    response = client.post(f"/providers/{provider.pk}/delete/")

    assert response.status_code == 400
    assert "Models route to this provider" in response.content.decode()
    assert Provider.objects.filter(pk=provider.pk).exists()


def test_a_provider_without_models_is_deleted(client, group):
    console_login(client, is_staff=True)
    provider = provider_create(name="spare", kind=ProviderKind.OPENAI, base_url="https://spare.example/v1")

    response = client.post(f"/providers/{provider.pk}/delete/")

    assert response.status_code == 302 and response["Location"] == "/providers/"
    assert not Provider.objects.filter(pk=provider.pk).exists()


def test_the_credential_reaches_no_page_not_even_an_attribute(client, group):
    console_login(client, is_staff=True)
    provider = provider_create(
        name="openai-prod", kind=ProviderKind.OPENAI, base_url="https://api.openai.com/v1", credential=SECRET
    )

    listing = client.get("/providers/").content.decode()
    detail = client.get(f"/providers/{provider.pk}/").content.decode()
    invalid_edit = client.post(
        f"/providers/{provider.pk}/edit/", {"name": "", "base_url": "not a url", "credential": SECRET}
    ).content.decode()

    assert "set" in listing and "set (encrypted, never shown)" in detail
    assert all(SECRET not in body for body in (listing, detail, invalid_edit))
    provider.refresh_from_db()
    assert provider.get_credential() == SECRET and provider.name == "openai-prod"


def test_the_mock_provider_always_connects(client, group):
    console_login(client, is_staff=True)
    provider = provider_create(name="mock-test", kind=ProviderKind.MOCK)

    htmx = client.post(f"/providers/{provider.pk}/test/", headers={"HX-Request": "true"})
    plain = client.post(f"/providers/{provider.pk}/test/", follow=True)

    assert htmx.status_code == 200 and "Connected" in htmx.content.decode()
    assert "Connected" in plain.content.decode()


def test_editing_a_model_changes_its_prices_and_deleting_removes_it(client, group):
    console_login(client, is_staff=True)
    provider = provider_create(name="vllm", kind=ProviderKind.OPENAI, base_url="http://10.0.0.5/v1")
    model = model_create(name="llama-3-8b", provider=provider)

    edited = client.post(
        f"/providers/{provider.pk}/models/{model.pk}/",
        {"upstream_model": "meta/llama-3-8b", "input_price_per_mtok": "0.05", "output_price_per_mtok": "0.10"},
    )
    model.refresh_from_db()
    assert edited.status_code == 302
    assert model.upstream_model == "meta/llama-3-8b"
    assert (model.input_price_per_mtok, model.output_price_per_mtok) == (Decimal("0.05"), Decimal("0.10"))
    assert "llama-3-8b" in client.get(f"/providers/{provider.pk}/").content.decode()

    deleted = client.post(f"/providers/{provider.pk}/models/{model.pk}/delete/")
    assert deleted.status_code == 302 and not Model.objects.filter(pk=model.pk).exists()
