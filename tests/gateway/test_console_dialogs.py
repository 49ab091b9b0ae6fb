"""The gateway details dialogs (Manage token quota, Manage expiration, Duplicate, Enable/Disable,
Delete), the API key dialogs (Create, Edit, Rotate, Revoke) and the API keys page, SPEC §2, with
and without htmx, and who may use them. (In a browser: tests/e2e/test_console_dialogs.py.)"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from gateway.models import Gateway, GatewayStatus, Role
from gateway.setup import gateway_create
from keys.models import ApiKey, ApiKeyStatus
from keys.services import api_key_create, api_key_revoke
from keys.tokens import hash_secret
from quotas.models import LimitMode, RefreshPeriod, SpendBudget, TokenQuota
from quotas.services import spend_budget_create, token_quota_set
from tests.factories import MembershipFactory, ResourceGroupFactory, UsageEventFactory
from tests.support.people import api_client_as, member_of

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 15, 12, 30, tzinfo=UTC)
HTMX = {"HX-Request": "true"}
SECRET = re.compile(r'value="(aigw_[A-Za-z0-9]{43})"')


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def group_name():
    """The `group` fixture's name, which this module's assertions spell out."""
    return "Platform"


@pytest.fixture
def gateway_and_key(group):
    gateway, api_key, _ = gateway_create(resource_group=group, name="support-bot")
    return gateway, api_key


@pytest.fixture
def gateway(gateway_and_key):
    return gateway_and_key[0]


@pytest.fixture
def api_key(gateway_and_key):
    return gateway_and_key[1]


def detail(client, gateway, tab="basic") -> str:
    return client.get(reverse("gateway-detail", args=[gateway.pk]) + f"?tab={tab}").content.decode()


def triggers(response) -> dict:
    return json.loads(response.headers.get("HX-Trigger-After-Settle", "{}"))


def secret_in(response) -> str:
    match = SECRET.search(response.content.decode())
    assert match, "no secret in the response"
    return match.group(1)


def flash(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def url(name, *args) -> str:
    return reverse(name, args=args)


GATEWAY_ACTIONS = ["Manage token quota", "Manage expiration", "Duplicate", "Disable", "Delete"]


# The details page's header actions.


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN])
def test_owners_and_admins_see_the_gateway_actions(client, group, gateway, role):
    client.force_login(member_of(group, role))

    page = detail(client, gateway)

    for label in GATEWAY_ACTIONS:
        assert f">{label}</" in page
    assert 'id="token-quota-dialog"' in page and 'id="delete-dialog"' in page


@pytest.mark.parametrize("role", [Role.DEVELOPER, Role.AUDITOR, Role.VIEWER])
def test_other_members_see_no_gateway_actions_and_get_a_403(client, group, gateway, api_key, role):
    client.force_login(member_of(group, role))

    page = detail(client, gateway)

    assert 'aria-label="Gateway actions"' not in page
    for label in GATEWAY_ACTIONS:
        assert f">{label}</" not in page
    for name, data in [
        ("gateway-manage-token-quota", {"limit_tokens": "5"}),
        ("gateway-expiration", {"api_key": api_key.pk, "expires_in": "7d"}),
        ("gateway-duplicate", {"name": "copy"}),
        ("gateway-status", {"status": "disabled"}),
        ("gateway-delete", {"confirm_name": "support-bot"}),
    ]:
        assert client.get(url(name, gateway.pk)).status_code in (403, 405)
        response = client.post(url(name, gateway.pk), data)
        assert response.status_code == 403
        assert "Your role does not allow this" in response.content.decode()
    gateway.refresh_from_db()
    assert gateway.status == GatewayStatus.ENABLED and gateway.deleted_at is None
    assert Gateway.objects.count() == 1 and not TokenQuota.objects.exists()


def test_the_actions_of_a_gateway_of_another_group_are_a_404(client, gateway, api_key):
    client.force_login(member_of(ResourceGroupFactory(), Role.OWNER))

    for name in ("gateway-manage-token-quota", "gateway-expiration", "gateway-duplicate", "gateway-delete"):
        assert client.get(url(name, gateway.pk)).status_code == 404
    for name in ("gateway-status", "gateway-delete", "api-key-create"):
        assert (
            client.post(url(name, gateway.pk), {"status": "disabled", "confirm_name": "support-bot"}).status_code == 404
        )
    for name in ("api-key-edit", "api-key-rotate", "api-key-revoke"):
        assert client.post(url(name, api_key.pk), {"name": "x", "expires_in": "keep"}).status_code == 404
    gateway.refresh_from_db()
    api_key.refresh_from_db()
    assert gateway.deleted_at is None and api_key.status == ApiKeyStatus.ACTIVE and api_key.name == "support-bot key"


# Manage token quota.


def test_an_admin_sets_the_token_quota_in_its_dialog(client, group, gateway):
    client.force_login(member_of(group, Role.ADMIN))
    dialog = client.get(url("gateway-manage-token-quota", gateway.pk), headers=HTMX).content.decode()
    assert "<html" not in dialog and 'name="limit_tokens"' in dialog
    assert 'id="id_dq_unlimited" data-disables="dq-fields" checked' in dialog

    response = client.post(
        url("gateway-manage-token-quota", gateway.pk),
        {"limit_tokens": "250000", "refresh_period": "monthly", "mode": "hard"},
        headers=HTMX,
    )

    quota = TokenQuota.objects.get(gateway=gateway)
    assert (quota.limit_tokens, quota.refresh_period, quota.mode) == (250_000, RefreshPeriod.MONTHLY, LimitMode.HARD)
    assert triggers(response) == {
        "aigw:toast": {"message": "Token quota saved."},
        "aigw:refresh": {},
        "aigw:close-dialog": {"id": "token-quota-dialog"},
    }
    assert "250,000 tokens used" not in response.content.decode()  # the tabs are refreshed, not sent here
    assert "0 / 250,000 tokens used · resets monthly" in detail(client, gateway)


def test_the_token_quota_dialog_refuses_a_missing_quota_and_ticking_unlimited_removes_it(client, group, gateway):
    token_quota_set(gateway=gateway, limit_tokens=1_000)
    client.force_login(member_of(group, Role.OWNER))

    invalid = client.post(url("gateway-manage-token-quota", gateway.pk), {"limit_tokens": "0"}, headers=HTMX)

    assert "Enter a positive number of tokens, or tick Unlimited quota." in invalid.content.decode()
    assert 'aria-invalid="true" aria-describedby="id_dq_limit_tokens-error"' in invalid.content.decode()
    assert "aigw:close-dialog" not in triggers(invalid)
    assert TokenQuota.objects.get(gateway=gateway).limit_tokens == 1_000

    response = client.post(url("gateway-manage-token-quota", gateway.pk), {"unlimited": "on"})
    assert response.status_code == 302 and response["Location"] == url("gateway-detail", gateway.pk)
    assert flash(response) == ["Token quota saved."]
    assert not TokenQuota.objects.filter(gateway=gateway).exists()


def test_the_token_quota_dialog_is_a_plain_page_without_javascript(client, group, gateway):
    client.force_login(member_of(group, Role.ADMIN))

    page = client.get(url("gateway-manage-token-quota", gateway.pk)).content.decode()

    assert "<html" in page and "<h2>Manage token quota</h2>" in page and "hx-post" not in page
    # Without JavaScript nothing can re-enable the fields, so they are never disabled.
    assert '<fieldset id="dq-fields" >' in page


# Manage expiration.


def test_an_admin_sets_the_expiration_of_the_only_key(client, group, gateway, api_key):
    client.force_login(member_of(group, Role.ADMIN))
    dialog = client.get(url("gateway-expiration", gateway.pk), headers=HTMX).content.decode()
    assert f'<input type="hidden" name="api_key" value="{api_key.pk}">' in dialog
    for label in ("7 days", "30 days", "60 days", "90 days", "Long-lived", "Custom"):
        assert f">{label}</option>" in dialog

    response = client.post(
        url("gateway-expiration", gateway.pk), {"api_key": api_key.pk, "expires_in": "30d"}, headers=HTMX
    )

    api_key.refresh_from_db()
    assert api_key.expires_at == NOW + timedelta(days=30)
    assert triggers(response)["aigw:toast"] == {"message": "Expiration of support-bot key saved."}
    assert triggers(response)["aigw:close-dialog"] == {"id": "expiration-dialog"}


def test_the_expiration_dialog_picks_one_key_of_several_and_takes_a_custom_utc_time(client, group, gateway, api_key):
    other, _ = api_key_create(gateway=gateway, name="batch", expires_at=NOW + timedelta(days=2))
    revoked, _ = api_key_create(gateway=gateway, name="old")
    api_key_revoke(api_key=revoked)
    client.force_login(member_of(group, Role.OWNER))

    dialog = client.get(url("gateway-expiration", gateway.pk) + f"?key={other.pk}", headers=HTMX).content.decode()

    assert '<select name="api_key" id="id_ex_api_key"' in dialog
    assert (
        f'<option value="{other.pk}" selected>batch ({other.prefix}…) · expires 2026-03-17 12:30 UTC</option>' in dialog
    )
    assert "old (" not in dialog  # revoked keys cannot be given an expiry
    assert 'value="2026-03-17T12:30"' in dialog  # the key's current expiry, as Custom

    data = {"api_key": other.pk, "expires_in": "custom", "expires_at": "2026-06-30T18:00"}
    client.post(url("gateway-expiration", gateway.pk), data, headers=HTMX)
    other.refresh_from_db()
    assert other.expires_at == datetime(2026, 6, 30, 18, 0, tzinfo=UTC)

    client.post(url("gateway-expiration", gateway.pk), {"api_key": other.pk, "expires_in": "never"})
    other.refresh_from_db()
    assert other.expires_at is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"expires_in": "custom", "expires_at": "2001-01-01T00:00"}, "The expiry must be in the future."),
        ({"expires_in": "custom", "expires_at": ""}, "Pick the date and time (UTC) when the API key expires."),
        ({"expires_in": "forever"}, "Select a valid choice."),
    ],
)
def test_the_expiration_dialog_names_what_is_wrong(client, group, gateway, api_key, data, message):
    client.force_login(member_of(group, Role.ADMIN))

    response = client.post(url("gateway-expiration", gateway.pk), {"api_key": api_key.pk, **data}, headers=HTMX)

    assert message in response.content.decode()
    api_key.refresh_from_db()
    assert api_key.expires_at is None


def test_the_expiration_dialog_refuses_a_key_of_another_gateway(client, group, gateway, api_key):
    _, foreign, _ = gateway_create(resource_group=ResourceGroupFactory(), name="elsewhere")
    client.force_login(member_of(group, Role.ADMIN))

    response = client.post(url("gateway-expiration", gateway.pk), {"api_key": foreign.pk, "expires_in": "7d"})

    assert "Pick one of this gateway&#x27;s API keys." in response.content.decode()
    foreign.refresh_from_db()
    assert foreign.expires_at is None


# Duplicate.


def test_an_admin_duplicates_a_gateway_and_sees_the_new_key_once(client, group, gateway):
    token_quota_set(gateway=gateway, limit_tokens=9_000)
    admin = member_of(group, Role.ADMIN)
    client.force_login(admin)
    dialog = client.get(url("gateway-duplicate", gateway.pk), headers=HTMX).content.decode()
    assert 'value="support-bot (copy)"' in dialog

    response = client.post(url("gateway-duplicate", gateway.pk), {"name": "support-bot (copy)"}, headers=HTMX)

    copy = Gateway.objects.get(name="support-bot (copy)")
    secret = secret_in(response)
    assert ApiKey.objects.get(gateway=copy).hashed_secret == hash_secret(secret)
    assert ApiKey.objects.get(gateway=copy).created_by == admin
    assert TokenQuota.objects.get(gateway=copy).limit_tokens == 9_000
    page = response.content.decode()
    assert "cannot be shown again" in page and 'data-copy="duplicated-api-key"' in page
    assert f'href="{url("gateway-detail", copy.pk)}"' in page
    assert response["Cache-Control"] == "no-store"
    assert triggers(response)["aigw:toast"] == {"message": "AI gateway support-bot (copy) created."}
    # Shown once: neither the dialog again nor the new gateway's page has it.
    assert secret not in client.get(url("gateway-duplicate", gateway.pk)).content.decode()
    assert secret not in detail(client, copy, "keys") and secret[:12] in detail(client, copy, "keys")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("support-bot", "A gateway named &#x27;support-bot&#x27; already exists in Platform."),
        ("", "Enter a name for the copy."),
    ],
)
def test_the_duplicate_dialog_refuses_a_taken_or_blank_name(client, group, gateway, name, message):
    client.force_login(member_of(group, Role.OWNER))

    response = client.post(url("gateway-duplicate", gateway.pk), {"name": name}, headers=HTMX)

    assert message in response.content.decode()
    assert "aigw_" not in response.content.decode().replace('name="', "")
    assert Gateway.objects.count() == 1


# Enable / Disable.


def test_an_admin_disables_and_enables_a_gateway(client, group, gateway):
    client.force_login(member_of(group, Role.ADMIN))

    response = client.post(url("gateway-status", gateway.pk), {"status": "disabled"}, headers=HTMX)

    gateway.refresh_from_db()
    assert gateway.status == GatewayStatus.DISABLED
    head = response.content.decode()
    assert 'id="gateway-head"' in head and '<span class="badge disabled">Disabled</span>' in head
    assert ">Enable</button>" in head
    message = "support-bot is disabled: requests with its API keys are refused."
    assert triggers(response)["aigw:toast"] == {"message": message}

    plain = client.post(url("gateway-status", gateway.pk), {"status": "enabled"})
    gateway.refresh_from_db()
    assert gateway.status == GatewayStatus.ENABLED
    assert plain.status_code == 302 and flash(plain) == ["support-bot is enabled: its API keys work again."]


def test_a_gateway_status_other_than_enabled_or_disabled_is_refused(client, group, gateway):
    client.force_login(member_of(group, Role.ADMIN))

    response = client.post(url("gateway-status", gateway.pk), {"status": "provisioning"})

    assert response.status_code == 400
    gateway.refresh_from_db()
    assert gateway.status == GatewayStatus.ENABLED


# Delete.


def test_a_wrong_name_does_not_delete_the_gateway(client, group, gateway):
    client.force_login(member_of(group, Role.ADMIN))
    dialog = client.get(url("gateway-delete", gateway.pk), headers=HTMX).content.decode()
    assert 'Type <strong class="confirm-name">support-bot</strong> to confirm' in dialog

    response = client.post(url("gateway-delete", gateway.pk), {"confirm_name": "support"}, headers=HTMX)

    assert "That is not this gateway&#x27;s name. Type support-bot to delete it." in response.content.decode()
    assert 'aria-invalid="true"' in response.content.decode()
    gateway.refresh_from_db()
    assert gateway.deleted_at is None


def test_an_admin_deletes_a_gateway_by_typing_its_name(client, group, gateway, api_key):
    client.force_login(member_of(group, Role.ADMIN))

    response = client.post(url("gateway-delete", gateway.pk), {"confirm_name": "support-bot"}, headers=HTMX)

    gateway.refresh_from_db()
    assert gateway.deleted_at is not None
    assert response["HX-Redirect"] == reverse("gateway-list")
    assert flash(response) == ["AI gateway support-bot deleted. Its API keys stopped working."]
    assert client.get(url("gateway-detail", gateway.pk)).status_code == 404
    assert "support-bot key" not in client.get(reverse("api-key-list")).content.decode()


def test_deleting_without_javascript_redirects_to_the_gateway_list(client, group, gateway):
    client.force_login(member_of(group, Role.OWNER))

    response = client.post(url("gateway-delete", gateway.pk), {"confirm_name": "support-bot"}, follow=True)

    assert response.redirect_chain == [(reverse("gateway-list"), 302)]
    assert "AI gateway support-bot deleted." in response.content.decode()


# Create API key.


def test_an_admin_creates_a_key_with_a_budget_and_sees_it_once(client, group, gateway):
    admin = member_of(group, Role.ADMIN)
    client.force_login(admin)
    assert ">Create API key</a>" in detail(client, gateway, "keys")
    dialog = client.get(url("api-key-create", gateway.pk), headers=HTMX).content.decode()
    assert 'name="limit_usd"' in dialog and '<option value="never" selected>Long-lived</option>' in dialog

    data = {"name": "production", "expires_in": "7d", "limit_usd": "10", "refresh_period": "monthly", "mode": "soft"}
    response = client.post(url("api-key-create", gateway.pk), data, headers=HTMX)

    api_key = ApiKey.objects.get(gateway=gateway, name="production")
    secret = secret_in(response)
    assert api_key.hashed_secret == hash_secret(secret) and api_key.created_by == admin
    assert api_key.expires_at == NOW + timedelta(days=7)
    budget = SpendBudget.objects.get(api_key=api_key)
    assert (budget.limit_usd, budget.refresh_period, budget.enforced) == (Decimal(10), RefreshPeriod.MONTHLY, True)
    assert "cannot be shown again" in response.content.decode() and response["Cache-Control"] == "no-store"
    assert triggers(response) == {"aigw:toast": {"message": "API key production created."}, "aigw:refresh": {}}
    keys_tab = detail(client, gateway, "keys")
    assert secret not in keys_tab and "$0.00 / $10 spent · monthly" in keys_tab
    assert secret not in client.get(url("api-key-create", gateway.pk)).content.decode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": ""}, "Enter a name for the API key."),
        ({"limit_usd": "0.5"}, "Enter a spend budget of at least 1 USD, or leave it blank for none."),
        ({"expires_in": "custom"}, "Pick the date and time (UTC) when the API key expires."),
    ],
)
def test_the_create_key_dialog_names_what_is_wrong_and_creates_nothing(client, group, gateway, data, message):
    client.force_login(member_of(group, Role.OWNER))

    response = client.post(
        url("api-key-create", gateway.pk), {"name": "ci", "expires_in": "never", **data}, headers=HTMX
    )

    assert message in response.content.decode()
    assert not SECRET.search(response.content.decode())
    assert ApiKey.objects.filter(gateway=gateway).count() == 1


def test_creating_a_key_without_javascript_shows_its_page_with_the_secret(client, group, gateway):
    client.force_login(member_of(group, Role.ADMIN))
    next_url = reverse("api-key-list")

    response = client.post(url("api-key-create", gateway.pk), {"name": "cli", "expires_in": "90d", "next": next_url})

    assert "<html" in response.content.decode() and secret_in(response)
    assert f'<a role="button" href="{next_url}">Done</a>' in response.content.decode()


# Edit, rotate and revoke.


def test_an_admin_renames_a_key_and_changes_its_expiry(client, group, gateway, api_key):
    client.force_login(member_of(group, Role.ADMIN))
    dialog = client.get(url("api-key-edit", api_key.pk), headers=HTMX).content.decode()
    assert 'value="support-bot key"' in dialog and '<option value="keep" selected>' in dialog

    response = client.post(url("api-key-edit", api_key.pk), {"name": "web app", "expires_in": "60d"}, headers=HTMX)

    api_key.refresh_from_db()
    assert (api_key.name, api_key.expires_at) == ("web app", NOW + timedelta(days=60))
    assert triggers(response)["aigw:close-dialog"] == {"id": "key-edit-dialog"}

    client.post(url("api-key-edit", api_key.pk), {"name": "web", "expires_in": "keep"})
    api_key.refresh_from_db()
    assert (api_key.name, api_key.expires_at) == ("web", NOW + timedelta(days=60))


def test_the_edit_dialog_refuses_a_blank_name(client, group, gateway, api_key):
    client.force_login(member_of(group, Role.ADMIN))

    response = client.post(url("api-key-edit", api_key.pk), {"name": " ", "expires_in": "keep"}, headers=HTMX)

    assert "Enter a name for the API key." in response.content.decode()
    api_key.refresh_from_db()
    assert api_key.name == "support-bot key"


def test_rotating_gives_a_new_secret_once_and_the_old_one_stops_matching(client, group, gateway, api_key):
    old_hash = api_key.hashed_secret
    client.force_login(member_of(group, Role.ADMIN))
    confirm = client.get(url("api-key-rotate", api_key.pk), headers=HTMX).content.decode()
    assert "The current secret stops working at once" in confirm and not SECRET.search(confirm)

    response = client.post(url("api-key-rotate", api_key.pk), headers=HTMX)

    api_key.refresh_from_db()
    secret = secret_in(response)
    assert api_key.hashed_secret == hash_secret(secret) != old_hash
    assert api_key.prefix == secret[:12] and response["Cache-Control"] == "no-store"
    assert "cannot be shown again" in response.content.decode()
    assert secret not in client.get(url("api-key-rotate", api_key.pk)).content.decode()


def test_a_revoked_key_cannot_be_rotated(client, group, gateway, api_key):
    api_key_revoke(api_key=api_key)
    client.force_login(member_of(group, Role.ADMIN))

    response = client.post(url("api-key-rotate", api_key.pk), headers=HTMX)

    assert "A revoked API key cannot be rotated." in response.content.decode()
    assert not SECRET.search(response.content.decode())


def test_revoking_a_key_and_revoking_it_again(client, group, gateway, api_key):
    client.force_login(member_of(group, Role.OWNER))

    response = client.post(url("api-key-revoke", api_key.pk), headers=HTMX)

    api_key.refresh_from_db()
    assert api_key.status == ApiKeyStatus.REVOKED
    assert triggers(response)["aigw:toast"] == {
        "message": "API key support-bot key revoked. Requests with it are refused."
    }
    again = client.post(url("api-key-revoke", api_key.pk), headers=HTMX)
    assert "This API key is already revoked." in again.content.decode()
    assert "aigw:toast" not in triggers(again)
    # A revoked key has no actions left.
    assert f'href="{url("api-key-rotate", api_key.pk)}' not in detail(client, gateway, "keys")


def test_a_key_action_without_javascript_goes_back_to_next(client, group, gateway, api_key):
    client.force_login(member_of(group, Role.ADMIN))

    response = client.post(url("api-key-revoke", api_key.pk), {"next": "/api-keys/?status=active"})
    evil = client.post(
        url("api-key-edit", api_key.pk), {"name": "x", "expires_in": "keep", "next": "https://evil.example/"}
    )

    assert response["Location"] == "/api-keys/?status=active"
    assert evil["Location"] == url("gateway-detail", gateway.pk) + "?tab=keys"


# Who may act on which key.


def test_a_developer_creates_keys_and_changes_only_their_own(client, group, gateway, api_key):
    developer = member_of(group, Role.DEVELOPER)
    client.force_login(developer)
    form = client.get(url("api-key-create", gateway.pk), headers=HTMX).content.decode()
    assert 'name="limit_usd"' not in form  # budgets are limits: owners and admins only

    response = client.post(url("api-key-create", gateway.pk), {"name": "mine", "expires_in": "never", "limit_usd": "5"})
    own = ApiKey.objects.get(name="mine")
    assert own.created_by == developer and secret_in(response)
    assert not SpendBudget.objects.filter(api_key=own).exists()

    keys_tab = detail(client, gateway, "keys")
    assert f'href="{url("api-key-rotate", own.pk)}' in keys_tab
    assert f'href="{url("api-key-rotate", api_key.pk)}' not in keys_tab
    assert "Edit budget" not in keys_tab
    assert client.post(url("api-key-rotate", api_key.pk)).status_code == 403
    assert client.post(url("api-key-revoke", api_key.pk)).status_code == 403
    assert client.post(url("api-key-edit", api_key.pk), {"name": "x", "expires_in": "keep"}).status_code == 403
    assert client.post(url("api-key-revoke", own.pk)).status_code == 302
    own.refresh_from_db()
    api_key.refresh_from_db()
    assert own.status == ApiKeyStatus.REVOKED and api_key.status == ApiKeyStatus.ACTIVE


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.VIEWER])
def test_auditors_and_viewers_see_no_key_buttons_and_get_a_403(client, group, gateway, api_key, role):
    client.force_login(member_of(group, role))

    for page in (detail(client, gateway, "keys"), client.get(reverse("api-key-list")).content.decode()):
        assert api_key.prefix in page
        for label in (">Create API key<", ">Edit<", ">Rotate<", ">Revoke<", "Edit budget"):
            assert label not in page
    assert client.post(url("api-key-create", gateway.pk), {"name": "x", "expires_in": "never"}).status_code == 403
    for name in ("api-key-edit", "api-key-rotate", "api-key-revoke"):
        assert client.get(url(name, api_key.pk)).status_code == 403
        assert client.post(url(name, api_key.pk), {"name": "x", "expires_in": "keep"}).status_code == 403
    api_key.refresh_from_db()
    assert api_key.status == ApiKeyStatus.ACTIVE and ApiKey.objects.count() == 1


# The API keys page.


def test_the_api_keys_page_lists_the_keys_of_visible_gateways_with_their_budget(client, group, gateway, api_key):
    staging, staging_key, _ = gateway_create(resource_group=group, name="staging")
    spend_budget_create(api_key=staging_key, limit_usd=10, refresh_period=RefreshPeriod.MONTHLY)
    UsageEventFactory(api_key=staging_key, created_at=NOW, cost_usd=Decimal("0.52"))
    UsageEventFactory(api_key=staging_key, created_at=NOW, cost_usd=Decimal("0.52"))
    UsageEventFactory(api_key=staging_key, created_at=NOW - timedelta(days=30), cost_usd=Decimal("9"))
    gateway_create(resource_group=ResourceGroupFactory(), name="elsewhere", key_name="not mine")
    client.force_login(member_of(group, Role.ADMIN))

    page = client.get(reverse("api-key-list")).content.decode()

    assert "support-bot key" in page and "staging key" in page and "not mine" not in page
    assert "$1.04 / $10 spent · monthly" in page and "Unlimited quota" in page
    assert f'<a href="{url("gateway-detail", staging.pk)}?tab=keys">staging</a>' in page
    assert '<span class="badge active">active</span>' in page
    assert f'<code class="key-prefix">{api_key.prefix}…</code>' in page


def test_the_api_keys_page_filters_by_gateway_status_and_name(client, group, gateway, api_key):
    staging, staging_key, _ = gateway_create(resource_group=group, name="staging")
    expired, _ = api_key_create(gateway=gateway, name="nightly", expires_at=NOW - timedelta(hours=1))
    revoked, _ = api_key_create(gateway=staging, name="old ci")
    api_key_revoke(api_key=revoked)
    client.force_login(member_of(group, Role.ADMIN))
    keys_page = reverse("api-key-list")

    def names(query: str, **headers) -> set[str]:
        page = client.get(keys_page + query, headers=headers).content.decode()
        return {
            name
            for name in ("support-bot key", "staging key", "nightly", "old ci")
            if f'<span class="key-name">{name}</span>' in page
        }

    assert names("") == {"support-bot key", "staging key", "nightly", "old ci"}
    assert names(f"?gateway={staging.pk}") == {"staging key", "old ci"}
    assert names("?status=expired") == {"nightly"}
    assert names("?status=active") == {"support-bot key", "staging key"}
    assert names("?status=revoked&q=CI") == {"old ci"}
    assert names(f"?q={staging_key.prefix}") == {"staging key"}
    assert names("?status=bogus&gateway=nope") == {"support-bot key", "staging key", "nightly", "old ci"}
    fragment = client.get(keys_page + "?status=expired", headers=HTMX).content.decode()
    assert fragment.startswith('\n<div id="api-keys-table"') and "<html" not in fragment
    empty = client.get(keys_page + "?q=zzz").content.decode()
    assert "No API keys match" in empty and f'href="{keys_page}"' in empty


def test_the_api_keys_page_says_what_to_do_when_there_is_nothing(client, group):
    owner = member_of(group, Role.OWNER)
    client.force_login(owner)
    assert "Create an AI gateway" in client.get(reverse("api-key-list")).content.decode()

    gateway = Gateway.objects.create(resource_group=group, name="bare")
    page = client.get(reverse("api-key-list")).content.decode()
    assert "No API keys yet" in page and "Create one with <strong>Create API key</strong>" in page
    assert client.get(reverse("api-key-list") + f"?gateway={gateway.pk}").status_code == 200


def test_the_api_keys_page_runs_the_same_number_of_queries_for_many_keys(client, group, gateway, api_key):
    client.force_login(member_of(group, Role.ADMIN))

    def queries() -> int:
        with CaptureQueriesContext(connection) as context:
            assert client.get(reverse("api-key-list")).status_code == 200
        return len(context.captured_queries)

    spend_budget_create(api_key=api_key, limit_usd=5, refresh_period=RefreshPeriod.DAILY)
    few = queries()
    for n in range(6):
        key, _ = api_key_create(gateway=gateway, name=f"key {n}")
        spend_budget_create(
            api_key=key, limit_usd=5, refresh_period=RefreshPeriod.WEEKLY if n % 2 else RefreshPeriod.DAILY
        )
        UsageEventFactory(api_key=key, created_at=NOW, cost_usd=Decimal("1"))
    gateway_create(resource_group=group, name="another")

    assert queries() == few + 1  # one more refresh period, not one more query per key


def test_a_developer_sees_actions_on_the_api_keys_page_for_their_own_keys_only(client, group, gateway, api_key):
    developer = member_of(group, Role.DEVELOPER)
    own, _ = api_key_create(gateway=gateway, name="mine", created_by=developer)
    client.force_login(developer)

    page = client.get(reverse("api-key-list")).content.decode()

    assert f'href="{url("api-key-revoke", own.pk)}' in page
    assert f'href="{url("api-key-revoke", api_key.pk)}' not in page
    assert "Edit budget" not in page


def test_a_key_created_through_the_rest_api_shows_on_the_page(client, group, gateway):
    admin = member_of(group, Role.ADMIN)
    api = api_client_as(admin)
    created = api.post(f"/api/v1/gateways/{gateway.pk}/api-keys", {"name": "from-the-api"}, format="json")
    assert created.status_code == 201
    client.force_login(admin)

    page = client.get(reverse("api-key-list")).content.decode()

    assert '<span class="key-name">from-the-api</span>' in page and created.json()["prefix"] in page
    assert created.json()["secret"] not in page


def test_an_admin_creates_a_key_from_the_api_keys_page_by_picking_its_gateway(client, group, gateway):
    staging, _, _ = gateway_create(resource_group=group, name="staging")
    gateway_create(resource_group=ResourceGroupFactory(), name="elsewhere")
    client.force_login(member_of(group, Role.ADMIN))
    create = reverse("api-key-create-any")
    page = client.get(reverse("api-key-list") + f"?gateway={staging.pk}").content.decode()
    assert f'href="{create}?next=' in page and f"gateway={staging.pk}" in page

    dialog = client.get(create + f"?gateway={staging.pk}", headers=HTMX).content.decode()
    assert f'<option value="{staging.pk}" selected>staging · Platform</option>' in dialog
    assert "elsewhere" not in dialog

    data = {"gateway": staging.pk, "name": "ci", "expires_in": "never", "limit_usd": "3"}
    response = client.post(create, data, headers=HTMX)

    api_key = ApiKey.objects.get(name="ci")
    assert api_key.gateway == staging and api_key.hashed_secret == hash_secret(secret_in(response))
    assert SpendBudget.objects.get(api_key=api_key).limit_usd == Decimal(3)


def test_creating_from_the_api_keys_page_checks_the_picked_gateway(client, group, gateway):
    managed_group = ResourceGroupFactory(name="Research")
    user = member_of(group, Role.DEVELOPER)
    MembershipFactory(user=user, resource_group=managed_group, role=Role.ADMIN)
    foreign, _, _ = gateway_create(resource_group=ResourceGroupFactory(), name="elsewhere")
    client.force_login(user)
    create = reverse("api-key-create-any")

    budget_refused = client.post(create, {"gateway": gateway.pk, "name": "x", "expires_in": "never", "limit_usd": "5"})
    foreign_refused = client.post(create, {"gateway": foreign.pk, "name": "x", "expires_in": "never"})
    without_budget = client.post(create, {"gateway": gateway.pk, "name": "mine", "expires_in": "never"})

    assert "can give its API keys a budget" in budget_refused.content.decode()
    assert "Pick one of the gateways where you may create API keys." in foreign_refused.content.decode()
    assert secret_in(without_budget) and ApiKey.objects.get(name="mine").created_by == user
    assert not ApiKey.objects.filter(name="x").exists()


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.VIEWER])
def test_auditors_and_viewers_cannot_create_a_key_from_the_api_keys_page(client, group, gateway, role):
    client.force_login(member_of(group, role))

    assert client.get(reverse("api-key-create-any")).status_code == 403
    response = client.post(reverse("api-key-create-any"), {"gateway": gateway.pk, "name": "x", "expires_in": "never"})
    assert response.status_code == 403
    assert ApiKey.objects.count() == 1


@pytest.mark.parametrize(
    "name",
    [
        "gateway-manage-token-quota",
        "gateway-expiration",
        "gateway-duplicate",
        "gateway-delete",
        "api-key-create",
        "api-key-edit",
        "api-key-rotate",
        "api-key-revoke",
        "api-key-create-any",
    ],
)
def test_every_dialog_is_a_plain_page_without_javascript(client, group, gateway, api_key, name):
    client.force_login(member_of(group, Role.OWNER))
    args = (
        []
        if name == "api-key-create-any"
        else [api_key.pk]
        if name.startswith("api-key-") and name != "api-key-create"
        else [gateway.pk]
    )

    page = client.get(reverse(name, args=args)).content.decode()

    assert "<html" in page and 'method="post"' in page and "hx-post" not in page
    assert '<article class="narrow dialog-page">' in page
