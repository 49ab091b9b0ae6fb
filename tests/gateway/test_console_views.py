"""The console's gateway pages: who sees what, and the Create AI Gateway form's rules.
(The full dialog in a browser is tested in tests/e2e/test_console_create_gateway.py.)"""

import re

import pytest
from django.urls import reverse

from gateway.models import Gateway, Model, Role
from gateway.services import mock_provider_ensure
from gateway.setup import gateway_create
from keys.models import ApiKey
from keys.tokens import hash_secret
from quotas.models import TokenQuota
from tests.factories import MembershipFactory, ResourceGroupFactory, UserFactory
from tests.support.people import member_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def group_name():
    """The `group` fixture's name, which this module's assertions spell out."""
    return "Platform"


def create_form(group, **overrides):
    data = {
        "unlimited_quota": "on",
        "expires_in": "",
        "name": "support-bot",
        "resource_group": group.pk,
        "accept_terms": "on",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_signed_out_visitors_are_sent_to_the_sign_in_page(client):
    response = client.get(reverse("gateway-list"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_an_admin_creates_a_gateway_and_sees_its_key_once(client, group):
    client.force_login(member_of(group, Role.ADMIN))

    response = client.post(
        reverse("gateway-create"),
        create_form(group, unlimited_quota=None, token_quota="1000000", expires_in="30d"),
    )

    assert response.status_code == 200
    page = response.content.decode()
    secret = re.search(r'value="(aigw_[A-Za-z0-9]{43})"', page).group(1)
    assert "cannot be shown again" in page
    assert response["Cache-Control"] == "no-store"
    gateway = Gateway.objects.get(name="support-bot")
    assert TokenQuota.objects.get(gateway=gateway).limit_tokens == 1_000_000
    assert ApiKey.objects.get(gateway=gateway).hashed_secret == hash_secret(secret)
    details = client.get(reverse("gateway-detail", args=[gateway.pk])).content.decode()
    assert secret not in details and secret[:12] in details


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"accept_terms": None}, "accept_terms", "accept the AI Gateway terms"),
        ({"unlimited_quota": None, "token_quota": ""}, "token_quota", "positive number of tokens"),
        ({"unlimited_quota": None, "token_quota": "0"}, "token_quota", "positive number of tokens"),
        ({"expires_in": "custom", "expires_at": "2001-01-01T00:00"}, "expires_at", "in the future"),
        ({"name": ""}, "name", "required"),
    ],
)
def test_the_create_form_names_what_is_wrong_and_creates_nothing(client, group, overrides, field, message):
    client.force_login(member_of(group, Role.OWNER))

    response = client.post(reverse("gateway-create"), create_form(group, **overrides), headers={"HX-Request": "true"})

    assert response.status_code == 200
    page = response.content.decode()
    assert message in page
    assert f'name="{field}"' in page and "aigw_" not in page
    assert not Gateway.objects.exists()


def test_a_gateway_name_is_unique_within_its_resource_group(client, group):
    client.force_login(member_of(group, Role.ADMIN))
    gateway_create(resource_group=group, name="support-bot")

    response = client.post(reverse("gateway-create"), create_form(group))

    assert "A gateway named &#x27;support-bot&#x27; already exists in Platform" in response.content.decode()
    assert Gateway.objects.count() == 1


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.VIEWER, Role.DEVELOPER])
def test_members_who_may_not_manage_gateways_see_them_but_cannot_create_one(client, group, role):
    gateway, _, _ = gateway_create(resource_group=group, name="visible")
    client.force_login(member_of(group, role))

    listing = client.get(reverse("gateway-list"))
    assert "visible" in listing.content.decode()
    assert reverse("gateway-create") not in listing.content.decode()
    assert client.get(reverse("gateway-create")).status_code == 404
    assert client.post(reverse("gateway-create"), create_form(group, name="sneaky")).status_code == 404
    assert client.get(reverse("gateway-detail", args=[gateway.pk])).status_code == 200
    assert not Gateway.objects.filter(name="sneaky").exists()


def test_a_gateway_of_another_group_is_a_404_not_a_403(client, group):
    gateway, _, _ = gateway_create(resource_group=ResourceGroupFactory(), name="elsewhere")
    client.force_login(member_of(group, Role.OWNER))

    assert client.get(reverse("gateway-detail", args=[gateway.pk])).status_code == 404
    assert "elsewhere" not in client.get(reverse("gateway-list")).content.decode()


def test_an_admin_cannot_create_a_gateway_in_a_group_they_do_not_manage(client, group):
    other = ResourceGroupFactory()
    MembershipFactory(resource_group=other, role=Role.VIEWER, user=(user := member_of(group, Role.ADMIN)))
    client.force_login(user)

    response = client.post(reverse("gateway-create"), create_form(other))

    assert "Select a valid choice" in response.content.decode()
    assert not Gateway.objects.exists()


def test_the_gateway_list_runs_the_same_number_of_queries_for_many_gateways(
    client, group, django_assert_max_num_queries
):
    client.force_login(member_of(group, Role.OWNER))
    gateways = [gateway_create(resource_group=group, name=f"gw-{i}")[0] for i in range(25)]

    with django_assert_max_num_queries(8):
        response = client.get(reverse("gateway-list"))
    page = response.content.decode()
    assert all(f'href="{reverse("gateway-detail", args=[g.pk])}"' in page for g in gateways)


def test_the_logs_tab_is_rendered_as_a_fragment_for_htmx(client, group):
    gateway, _, _ = gateway_create(resource_group=group, name="logs")
    client.force_login(member_of(group, Role.AUDITOR))

    fragment = client.get(reverse("gateway-detail", args=[gateway.pk]) + "?tab=logs", headers={"HX-Request": "true"})

    assert "No requests yet" in fragment.content.decode()
    assert "<html" not in fragment.content.decode()
    assert UserFactory._meta.model.objects.count() == 1


# Viewers read settings only: no Logs or Data analysis tab (SPEC §1) --------------------------


def detail_url(gateway, tab=None) -> str:
    return reverse("gateway-detail", args=[gateway.pk]) + (f"?tab={tab}" if tab else "")


def tab_names(page: str) -> list[str]:
    return re.findall(r'data-tab="([a-z]+)"', page)


def test_a_viewer_sees_no_usage_tabs_and_the_page_opens_on_basic_information(client, group):
    gateway, _, _ = gateway_create(resource_group=group, name="support-bot")
    client.force_login(member_of(group, Role.VIEWER))

    page = client.get(detail_url(gateway)).content.decode()

    assert tab_names(page) == ["basic", "keys", "limits"]
    assert 'aria-selected="true" data-tab="basic"' in page


@pytest.mark.parametrize("tab", ["logs", "analysis"])
def test_a_viewer_gets_403_at_the_logs_and_data_analysis_urls(client, group, tab):
    gateway, _, _ = gateway_create(resource_group=group, name="support-bot")
    client.force_login(member_of(group, Role.VIEWER))

    assert client.get(detail_url(gateway, tab)).status_code == 403
    assert client.get(detail_url(gateway, tab), headers={"HX-Request": "true"}).status_code == 403


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN, Role.DEVELOPER, Role.AUDITOR])
def test_every_role_that_reads_usage_sees_every_tab(client, group, role):
    gateway, _, _ = gateway_create(resource_group=group, name="support-bot")
    client.force_login(member_of(group, role))

    page = client.get(detail_url(gateway)).content.decode()

    assert tab_names(page) == ["logs", "analysis", "basic", "keys", "limits"]
    assert client.get(detail_url(gateway, "logs")).status_code == 200
    assert client.get(detail_url(gateway, "analysis")).status_code == 200


def test_a_viewer_sees_the_token_quota_but_not_the_tokens_used(client, group):
    gateway, _, _ = gateway_create(resource_group=group, name="support-bot", token_quota=1_000_000)
    client.force_login(member_of(group, Role.VIEWER))

    page = client.get(detail_url(gateway)).content.decode()

    assert "1,000,000 tokens" in page and "tokens used" not in page


# A gateway's models on Basic information (SPEC §1) -------------------------------------------


@pytest.fixture
def catalog():
    mock_provider_ensure()
    return {model.name: model for model in Model.objects.all()}


def models_line(page: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", re.search(r"<p data-models>(.*?)</p>", page, re.S).group(1)))


def test_basic_information_says_all_models_or_lists_them(client, group, catalog):
    every, _, _ = gateway_create(resource_group=group, name="every", all_models=True)
    listed, _, _ = gateway_create(
        resource_group=group, name="listed", allowed_models=[catalog["mock/large"], catalog["mock/echo"]]
    )
    client.force_login(member_of(group, Role.VIEWER))

    assert models_line(client.get(detail_url(every)).content.decode()).startswith("All models")
    assert models_line(client.get(detail_url(listed)).content.decode()) == "mock/echo, mock/large"


def test_only_owners_and_admins_get_the_models_form(client, group, catalog):
    gateway, _, _ = gateway_create(resource_group=group, name="support-bot")
    for role, has_form in [(Role.OWNER, True), (Role.ADMIN, True), (Role.DEVELOPER, False), (Role.VIEWER, False)]:
        client.force_login(member_of(group, role))
        page = client.get(detail_url(gateway)).content.decode()
        assert (reverse("gateway-models", args=[gateway.pk]) in page) is has_form, role


def test_an_admin_narrows_a_gateway_to_chosen_models(client, group, catalog):
    gateway, _, _ = gateway_create(resource_group=group, name="support-bot")
    client.force_login(member_of(group, Role.ADMIN))

    response = client.post(reverse("gateway-models", args=[gateway.pk]), {"models": ["mock/echo"]})

    assert response.status_code == 302 and response["Location"].endswith("?tab=basic")
    gateway.refresh_from_db()
    assert not gateway.all_models and [m.name for m in gateway.allowed_models.all()] == ["mock/echo"]


def test_saving_the_models_with_htmx_answers_the_tabs_with_a_toast(client, group, catalog):
    gateway, _, _ = gateway_create(resource_group=group, name="support-bot")
    client.force_login(member_of(group, Role.OWNER))

    response = client.post(
        reverse("gateway-models", args=[gateway.pk]), {"all_models": "on"}, headers={"HX-Request": "true"}
    )

    assert response.status_code == 200 and "<html" not in response.content.decode()
    assert "Models saved." in response["HX-Trigger"]
    assert models_line(response.content.decode()).startswith("All models")


def test_removing_the_last_model_in_the_console_serves_none_never_all(client, group, catalog):
    gateway, _, _ = gateway_create(resource_group=group, name="support-bot", allowed_models=[catalog["mock/echo"]])
    client.force_login(member_of(group, Role.ADMIN))

    form_page = client.get(detail_url(gateway)).content.decode()
    client.post(reverse("gateway-models", args=[gateway.pk]), {})

    assert "serves no model at all" in form_page  # the help text says so before the change
    gateway.refresh_from_db()
    assert not gateway.all_models and not gateway.allowed_models.exists()
    assert models_line(client.get(detail_url(gateway)).content.decode()).startswith("No models")


def test_a_model_outside_the_catalog_is_an_error_on_the_form_and_nothing_changes(client, group, catalog):
    gateway, _, _ = gateway_create(resource_group=group, name="support-bot")
    client.force_login(member_of(group, Role.ADMIN))

    response = client.post(reverse("gateway-models", args=[gateway.pk]), {"models": ["gpt-9"]})

    assert response.status_code == 200
    assert "gpt-9 is not in the model catalog." in response.content.decode()
    gateway.refresh_from_db()
    assert gateway.all_models


@pytest.mark.parametrize(("role", "status"), [(Role.DEVELOPER, 403), (Role.VIEWER, 403), (None, 404)])
def test_others_cannot_change_a_gateways_models(client, group, catalog, role, status):
    gateway, _, _ = gateway_create(resource_group=group, name="support-bot")
    user = member_of(group, role) if role else member_of(ResourceGroupFactory(), Role.OWNER)
    client.force_login(user)

    response = client.post(reverse("gateway-models", args=[gateway.pk]), {"models": ["mock/echo"]})

    assert response.status_code == status
    gateway.refresh_from_db()
    assert gateway.all_models
