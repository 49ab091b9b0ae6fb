"""The console's limits: the API keys tab with each key's spend budget and its Edit budget dialog,
the Limits tab (token quota, spend budget, TPM and RPM), the optional spend budget and TPM of the
Create AI Gateway dialog, and who may change them. (In a browser: tests/e2e/test_console_limits.py.)"""

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse

from core.errors import ValidationFailed
from gateway.models import Gateway, Role
from gateway.setup import gateway_create
from keys.services import api_key_create
from quotas.models import LimitMode, RateLimit, RefreshPeriod, SpendBudget, TokenQuota
from quotas.services import rate_limit_set, spend_budget_archive, spend_budget_create, token_quota_set
from tests.factories import ResourceGroupFactory, UsageEventFactory
from tests.support.people import member_of

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 15, 12, 30, tzinfo=UTC)
HTMX = {"HX-Request": "true"}


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


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


def spend(api_key, usd, *, at=NOW, tokens=100):
    """A usage event of `api_key` costing `usd`, as the data plane records it."""
    return UsageEventFactory(api_key=api_key, created_at=at, total_tokens=tokens, cost_usd=Decimal(usd))


def tab(client, gateway, name):
    return client.get(reverse("gateway-detail", args=[gateway.pk]) + f"?tab={name}").content.decode()


def budget_url(gateway, api_key):
    return reverse("api-key-budget", args=[gateway.pk, api_key.pk])


def triggers(response, header="HX-Trigger"):
    return json.loads(response.headers.get(header, "{}"))


# API keys tab.


def test_the_api_keys_tab_shows_what_a_key_spent_of_its_budget_this_window(client, group, gateway, api_key):
    spend_budget_create(api_key=api_key, limit_usd=10, refresh_period=RefreshPeriod.MONTHLY)
    spend(api_key, "0.52")
    spend(api_key, "0.52", at=datetime(2026, 3, 1, tzinfo=UTC))
    spend(api_key, "3.00", at=datetime(2026, 2, 28, 23, 59, 59, tzinfo=UTC))  # last month's window
    client.force_login(member_of(group, Role.VIEWER))

    page = tab(client, gateway, "keys")

    assert "$1.04 / $10 spent · monthly" in page
    assert api_key.prefix in page and '<span class="badge active">active</span>' in page
    assert 'aria-label="Budget of support-bot key spent"' in page


def test_a_budget_without_refresh_period_counts_all_spend_and_names_no_period(client, group, gateway, api_key):
    spend_budget_create(api_key=api_key, limit_usd="12.5")
    spend(api_key, "3.00", at=datetime(2025, 1, 1, tzinfo=UTC))
    spend(api_key, "0.000435")
    client.force_login(member_of(group, Role.VIEWER))

    page = tab(client, gateway, "keys")

    assert "$3.000435 / $12.50 spent<" in page
    assert "· none" not in page


def test_keys_without_an_enforced_budget_have_an_unlimited_quota(client, group, gateway, api_key):
    archived, _ = api_key_create(gateway=gateway, name="archived")
    spend_budget_archive(budget=spend_budget_create(api_key=archived, limit_usd=5))
    inactive, _ = api_key_create(gateway=gateway, name="inactive")
    spend_budget_create(api_key=inactive, limit_usd=5, active=False)
    client.force_login(member_of(group, Role.VIEWER))

    page = tab(client, gateway, "keys")

    assert page.count("Unlimited quota") == 3
    assert "Budget kept, not enforced" in page
    assert " spent" not in page


def test_the_api_keys_tab_shows_suspended_expired_and_revoked_keys(client, group, gateway, api_key):
    api_key.status, api_key.suspended_reason = "suspended", "token_quota"
    api_key.save()
    api_key_create(gateway=gateway, name="old", expires_at=datetime(2026, 3, 1, tzinfo=UTC))
    revoked, _ = api_key_create(gateway=gateway, name="gone")
    revoked.status = "revoked"
    revoked.save()
    client.force_login(member_of(group, Role.AUDITOR))

    page = tab(client, gateway, "keys")

    for status in ("suspended", "expired", "revoked"):
        assert f'<span class="badge {status}">{status}</span>' in page
    assert "Token quota reached" in page
    assert "2026-03-01 00:00" in page


def test_an_admin_gives_a_key_a_budget_in_the_edit_budget_dialog(client, group, gateway, api_key):
    spend(api_key, "0.52")
    spend(api_key, "0.52")
    client.force_login(member_of(group, Role.ADMIN))
    assert "Edit budget" in tab(client, gateway, "keys")

    dialog = client.get(budget_url(gateway, api_key), headers=HTMX)
    assert 'name="limit_usd"' in dialog.content.decode() and "<html" not in dialog.content.decode()

    response = client.post(
        budget_url(gateway, api_key),
        {"enabled": "on", "limit_usd": "10", "refresh_period": "monthly", "mode": "hard"},
        headers=HTMX,
    )

    budget = SpendBudget.objects.get(api_key=api_key)
    assert (budget.limit_usd, budget.refresh_period, budget.mode, budget.enforced) == (
        Decimal(10),
        RefreshPeriod.MONTHLY,
        LimitMode.HARD,
        True,
    )
    fragment = response.content.decode()
    assert f'id="api-key-{api_key.pk}-budget" hx-swap-oob="true"' in fragment
    assert "$1.04 / $10 spent · monthly" in fragment
    after_settle = triggers(response, "HX-Trigger-After-Settle")
    assert after_settle["aigw:close-dialog"] == {"id": "budget-dialog"}
    assert after_settle["aigw:toast"] == {"message": "Budget of support-bot key saved."}


def test_disabling_a_key_budget_archives_it_and_enabling_it_restores_it(client, group, gateway, api_key):
    budget = spend_budget_create(api_key=api_key, limit_usd=10, refresh_period=RefreshPeriod.WEEKLY, active=False)
    client.force_login(member_of(group, Role.OWNER))

    client.post(budget_url(gateway, api_key), {"limit_usd": "10"}, headers=HTMX)
    budget.refresh_from_db()
    assert budget.archived_at is not None
    assert "Unlimited quota" in tab(client, gateway, "keys")

    client.post(
        budget_url(gateway, api_key),
        {"enabled": "on", "limit_usd": "25.5", "refresh_period": "weekly", "mode": "soft"},
        headers=HTMX,
    )
    restored = SpendBudget.objects.get(api_key=api_key)
    assert restored.pk == budget.pk
    assert (restored.archived_at, restored.active, restored.limit_usd) == (None, True, Decimal("25.5"))
    assert "$0.00 / $25.50 spent · weekly" in tab(client, gateway, "keys")


@pytest.mark.parametrize(
    ("limit_usd", "message"),
    [("0.99", "at least 1 USD"), ("", "at least 1 USD"), ("ten", "at least 1 USD"), ("1.00001", "4 decimal places")],
)
def test_the_edit_budget_dialog_refuses_a_budget_below_one_dollar(client, group, gateway, api_key, limit_usd, message):
    client.force_login(member_of(group, Role.ADMIN))

    response = client.post(
        budget_url(gateway, api_key),
        {"enabled": "on", "limit_usd": limit_usd, "refresh_period": "monthly"},
        headers=HTMX,
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert 'id="id_kb_limit_usd-error"' in page and message in page
    assert 'aria-invalid="true"' in page and "<html" not in page
    assert "HX-Trigger-After-Settle" not in response.headers
    assert not SpendBudget.objects.exists()


def test_without_htmx_the_edit_budget_page_saves_and_returns_to_the_keys_tab(client, group, gateway, api_key):
    client.force_login(member_of(group, Role.ADMIN))
    assert "<html" in client.get(budget_url(gateway, api_key)).content.decode()

    response = client.post(budget_url(gateway, api_key), {"enabled": "on", "limit_usd": "3"}, follow=True)

    assert response.redirect_chain[-1][0].endswith("?tab=keys")
    page = response.content.decode()
    assert "Budget of support-bot key saved." in page
    assert "$0.00 / $3 spent<" in page


def test_a_key_of_another_gateway_is_a_404_in_the_edit_budget_dialog(client, group, gateway):
    _, other_key, _ = gateway_create(resource_group=group, name="other")
    client.force_login(member_of(group, Role.ADMIN))

    assert client.get(budget_url(gateway, other_key)).status_code == 404


# Limits tab.


def test_the_limits_tab_shows_each_limit_with_what_was_used_in_its_window(client, group, gateway, api_key):
    token_quota_set(gateway=gateway, limit_tokens=50_000, refresh_period=RefreshPeriod.DAILY)
    spend_budget_create(gateway=gateway, limit_usd=100, refresh_period=RefreshPeriod.WEEKLY)
    rate_limit_set(gateway=gateway, tokens_per_minute=10_000, requests_per_minute=None)
    spend(api_key, "1.25", tokens=1_500, at=datetime(2026, 3, 15, 12, 30, tzinfo=UTC))
    spend(api_key, "0.75", tokens=500, at=datetime(2026, 3, 15, 1, tzinfo=UTC))
    spend(api_key, "2.00", tokens=2_000, at=datetime(2026, 3, 9, tzinfo=UTC))  # Monday: this week, not today
    client.force_login(member_of(group, Role.VIEWER))

    page = tab(client, gateway, "limits")

    assert "2,000 / 50,000 tokens used · resets daily" in page
    assert "$4.00 / $100 spent · weekly" in page
    assert "This minute: 1,500 tokens · 1 request" in page
    assert "10,000 tokens per minute" in page
    assert "<dt>RPM</dt><dd>Unlimited</dd>" in page


def test_a_gateway_without_limits_shows_unlimited_and_its_lifetime_usage(client, group, gateway, api_key):
    spend(api_key, "0.5", tokens=1_234, at=datetime(2025, 6, 1, tzinfo=UTC))
    client.force_login(member_of(group, Role.ADMIN))

    page = tab(client, gateway, "limits")

    assert "Unlimited quota · 1,234 tokens used" in page
    assert "Unlimited spend · $0.50 spent" in page
    assert "This minute: 0 tokens · 0 requests" in page


def test_an_admin_sets_and_removes_the_token_quota(client, group, gateway):
    client.force_login(member_of(group, Role.ADMIN))
    url = reverse("gateway-token-quota", args=[gateway.pk])

    response = client.post(url, {"limit_tokens": "5000", "refresh_period": "daily", "mode": "hard"}, headers=HTMX)

    quota = TokenQuota.objects.get(gateway=gateway)
    assert (quota.limit_tokens, quota.refresh_period, quota.mode) == (5000, RefreshPeriod.DAILY, LimitMode.HARD)
    card = response.content.decode()
    assert card.lstrip().startswith('<article id="limit-token-quota"') and "<html" not in card
    assert "0 / 5,000 tokens used · resets daily" in card and "Saved." in card
    assert triggers(response)["aigw:toast"] == {"message": "Token quota saved."}

    client.post(url, {"unlimited": "on", "limit_tokens": "5000"}, headers=HTMX)
    assert not TokenQuota.objects.exists()


@pytest.mark.parametrize("value", ["", "0", "-5", "1.5"])
def test_a_token_quota_must_be_a_positive_number_of_tokens(client, group, gateway, value):
    client.force_login(member_of(group, Role.ADMIN))

    response = client.post(
        reverse("gateway-token-quota", args=[gateway.pk]),
        {"limit_tokens": value, "refresh_period": "none"},
        headers=HTMX,
    )

    card = response.content.decode()
    assert 'id="id_tq_limit_tokens-error">Enter a positive number of tokens, or tick Unlimited quota.<' in card
    assert "Saved." not in card and "HX-Trigger" not in response.headers
    assert not TokenQuota.objects.exists()


def test_raising_the_token_quota_reactivates_the_keys_it_suspended(client, group, gateway, api_key):
    token_quota_set(gateway=gateway, limit_tokens=10)
    api_key.status, api_key.suspended_reason = "suspended", "token_quota"
    api_key.save()
    client.force_login(member_of(group, Role.ADMIN))

    client.post(reverse("gateway-token-quota", args=[gateway.pk]), {"limit_tokens": "1000"}, headers=HTMX)

    api_key.refresh_from_db()
    assert api_key.status == "active"


def test_an_admin_sets_archives_and_restores_the_gateway_spend_budget(client, group, gateway, api_key):
    spend(api_key, "2.5")
    client.force_login(member_of(group, Role.ADMIN))
    url = reverse("gateway-spend-budget", args=[gateway.pk])

    response = client.post(
        url, {"limit_usd": "20", "refresh_period": "monthly", "mode": "soft", "active": "on"}, headers=HTMX
    )
    budget = SpendBudget.objects.get(gateway=gateway)
    assert (budget.limit_usd, budget.refresh_period, budget.enforced) == (Decimal(20), RefreshPeriod.MONTHLY, True)
    assert "$2.50 / $20 spent · monthly" in response.content.decode()
    assert triggers(response)["aigw:toast"] == {"message": "Spend budget saved."}

    response = client.post(url, {"unlimited": "on"}, headers=HTMX)
    budget.refresh_from_db()
    assert budget.archived_at is not None
    assert "Unlimited spend · $2.50 spent" in response.content.decode()

    client.post(url, {"limit_usd": "30", "refresh_period": "none", "mode": "hard"}, headers=HTMX)
    budget.refresh_from_db()
    assert (budget.archived_at, budget.active, budget.limit_usd, budget.mode) == (None, False, Decimal(30), "hard")
    assert "$2.50 / $30 spent" in tab(client, gateway, "limits")


@pytest.mark.parametrize("value", ["0.5", "", "-1"])
def test_a_gateway_spend_budget_is_at_least_one_dollar(client, group, gateway, value):
    client.force_login(member_of(group, Role.ADMIN))

    response = client.post(
        reverse("gateway-spend-budget", args=[gateway.pk]), {"limit_usd": value, "active": "on"}, headers=HTMX
    )

    assert 'id="id_sb_limit_usd-error">Enter a spend budget of at least 1 USD.<' in response.content.decode()
    assert not SpendBudget.objects.exists()


def test_an_admin_sets_tpm_and_rpm_and_removes_them(client, group, gateway):
    client.force_login(member_of(group, Role.OWNER))
    url = reverse("gateway-rate-limit", args=[gateway.pk])

    response = client.post(url, {"tokens_per_minute": "20000", "unlimited_rpm": "on"}, headers=HTMX)

    limit = RateLimit.objects.get(gateway=gateway)
    assert (limit.tokens_per_minute, limit.requests_per_minute) == (20_000, None)
    assert 'value="20000"' in response.content.decode()
    assert triggers(response)["aigw:toast"] == {"message": "TPM and RPM saved."}

    client.post(url, {"tokens_per_minute": "20000", "requests_per_minute": "60"}, headers=HTMX)
    assert RateLimit.objects.get(gateway=gateway).requests_per_minute == 60

    client.post(url, {"unlimited_tpm": "on", "unlimited_rpm": "on"}, headers=HTMX)
    assert not RateLimit.objects.exists()


@pytest.mark.parametrize("value", ["", "0", "-3", "2.5", "many"])
def test_tpm_must_be_a_positive_whole_number(client, group, gateway, value):
    client.force_login(member_of(group, Role.ADMIN))

    response = client.post(
        reverse("gateway-rate-limit", args=[gateway.pk]),
        {"tokens_per_minute": value, "unlimited_rpm": "on"},
        headers=HTMX,
    )

    card = response.content.decode()
    message = "Enter a positive whole number of tokens per minute, or tick Unlimited TPM."
    assert f'id="id_rl_tokens_per_minute-error">{message}<' in card
    assert not RateLimit.objects.exists()


def test_without_htmx_a_limit_form_saves_and_returns_to_the_limits_tab(client, group, gateway):
    client.force_login(member_of(group, Role.ADMIN))
    url = reverse("gateway-rate-limit", args=[gateway.pk])

    response = client.post(url, {"tokens_per_minute": "500", "unlimited_rpm": "on"}, follow=True)
    assert response.redirect_chain[-1][0].endswith("?tab=limits")
    assert "TPM and RPM saved." in response.content.decode()

    invalid = client.post(url, {"tokens_per_minute": "0", "unlimited_rpm": "on"}).content.decode()
    assert "<html" in invalid and 'id="id_rl_tokens_per_minute-error"' in invalid


# Who may change limits.


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.VIEWER, Role.DEVELOPER])
def test_members_who_may_not_manage_gateways_see_limits_but_cannot_change_them(client, group, gateway, api_key, role):
    spend_budget_create(api_key=api_key, limit_usd=10)
    spend_budget_create(gateway=gateway, limit_usd=50)
    client.force_login(member_of(group, role))

    keys, limits = tab(client, gateway, "keys"), tab(client, gateway, "limits")

    assert "$0.00 / $10 spent" in keys and "Edit budget" not in keys
    assert "$0.00 / $50 spent" in limits
    assert "<form" not in limits.split('id="tab-content"')[1] and "<input" not in limits.split('id="tab-content"')[1]
    assert client.get(budget_url(gateway, api_key)).status_code == 403
    assert client.post(budget_url(gateway, api_key), {"limit_usd": "99", "enabled": "on"}).status_code == 403
    for name in ("gateway-token-quota", "gateway-spend-budget", "gateway-rate-limit"):
        data = {"limit_tokens": "1", "limit_usd": "99", "tokens_per_minute": "1", "unlimited_rpm": "on"}
        assert client.post(reverse(name, args=[gateway.pk]), data).status_code == 403
    assert not TokenQuota.objects.exists() and not RateLimit.objects.exists()
    assert SpendBudget.objects.get(api_key=api_key).limit_usd == 10


def test_the_limits_of_a_gateway_of_another_group_are_a_404(client, gateway, api_key):
    client.force_login(member_of(ResourceGroupFactory(), Role.OWNER))

    assert client.get(budget_url(gateway, api_key)).status_code == 404
    assert client.post(budget_url(gateway, api_key), {"limit_usd": "5", "enabled": "on"}).status_code == 404
    for name in ("gateway-token-quota", "gateway-spend-budget", "gateway-rate-limit"):
        assert client.post(reverse(name, args=[gateway.pk]), {"limit_tokens": "1"}).status_code == 404
    assert not SpendBudget.objects.exists() and not TokenQuota.objects.exists()


def test_owners_and_admins_see_the_edit_controls(client, group, gateway):
    client.force_login(member_of(group, Role.OWNER))

    limits = tab(client, gateway, "limits")

    assert limits.count('class="limit-form"') == 3
    assert "Edit budget" in tab(client, gateway, "keys")


# The Create AI Gateway dialog's spend budget and TPM.


def create_form(group, **overrides):
    data = {"unlimited_quota": "on", "name": "support-bot", "resource_group": group.pk, "accept_terms": "on"}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_a_gateway_is_created_with_a_spend_budget_and_tpm(client, group):
    client.force_login(member_of(group, Role.ADMIN))

    response = client.post(
        reverse("gateway-create"),
        create_form(group, spend_budget_usd="25", spend_budget_refresh_period="monthly", tokens_per_minute="30000"),
        headers=HTMX,
    )

    assert "cannot be shown again" in response.content.decode()
    gateway = Gateway.objects.get(name="support-bot")
    budget = SpendBudget.objects.get(gateway=gateway)
    assert (budget.limit_usd, budget.refresh_period, budget.enforced) == (Decimal(25), RefreshPeriod.MONTHLY, True)
    limit = RateLimit.objects.get(gateway=gateway)
    assert (limit.tokens_per_minute, limit.requests_per_minute) == (30_000, None)


def test_blank_spend_budget_and_tpm_mean_none(client, group):
    client.force_login(member_of(group, Role.ADMIN))

    client.post(reverse("gateway-create"), create_form(group, spend_budget_usd="", tokens_per_minute=""))

    assert Gateway.objects.filter(name="support-bot").exists()
    assert not SpendBudget.objects.exists() and not RateLimit.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"spend_budget_usd": "0.5"}, "spend_budget_usd", "at least 1 USD, or leave it blank"),
        ({"spend_budget_usd": "lots"}, "spend_budget_usd", "at least 1 USD, or leave it blank"),
        ({"tokens_per_minute": "0"}, "tokens_per_minute", "positive whole number of tokens per minute"),
        ({"tokens_per_minute": "1.5"}, "tokens_per_minute", "positive whole number of tokens per minute"),
    ],
)
def test_the_create_dialog_refuses_a_bad_budget_or_tpm_on_its_more_settings_step(
    client, group, overrides, field, message
):
    client.force_login(member_of(group, Role.OWNER))

    response = client.post(reverse("gateway-create"), create_form(group, **overrides), headers=HTMX)

    page = response.content.decode()
    assert f'id="id_{field}-error"' in page and message in page
    assert 'data-active-step="4"' in page
    assert not Gateway.objects.exists()


def test_the_gateway_is_not_created_when_its_limits_cannot_be_set(client, group, monkeypatch):
    def refuse(**kwargs):
        raise ValidationFailed({"tokens_per_minute": "Must be a positive whole number."})

    monkeypatch.setattr("gateway.setup.rate_limit_set", refuse)
    client.force_login(member_of(group, Role.OWNER))

    response = client.post(
        reverse("gateway-create"), create_form(group, spend_budget_usd="5", tokens_per_minute="10"), headers=HTMX
    )

    assert 'id="id_tokens_per_minute-error">Must be a positive whole number.<' in response.content.decode()
    assert not Gateway.objects.exists() and not SpendBudget.objects.exists()


def test_the_api_keys_tab_runs_the_same_number_of_queries_for_many_budgeted_keys(
    client, group, django_assert_max_num_queries
):
    from keys.services import api_key_create
    from quotas.services import spend_budget_create as create_budget

    gateway, _, _ = gateway_create(resource_group=group, name="many-keys")
    for i in range(20):
        key, _ = api_key_create(gateway=gateway, name=f"k{i}")
        create_budget(api_key=key, limit_usd=5, refresh_period="monthly" if i % 2 else "daily")
    client.force_login(member_of(group, Role.OWNER))

    with django_assert_max_num_queries(12):
        page = client.get(reverse("gateway-detail", args=[gateway.pk]) + "?tab=keys").content.decode()
    assert page.count("$0.00 / $5 spent") == 20
