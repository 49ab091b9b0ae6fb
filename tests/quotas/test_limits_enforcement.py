"""The limit engine through the data plane, in-process, with a controlled clock (time-machine):
windows roll over at the exact UTC second with no job run; soft and hard budgets; TPM/RPM with
Retry-After and OpenAI's x-ratelimit headers; every level named; failures charge nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine

from gateway.models import Gateway
from gateway.pricing import Prices
from gateway.services import model_create, provider_create
from gateway.setup import gateway_create
from quotas.estimate import prompt_bound
from quotas.models import LimitMode, RefreshPeriod
from quotas.services import rate_limit_set, spend_budget_create, spend_budget_update, token_quota_set
from tests.factories import ResourceGroupFactory
from tests.support.inprocess import InProcessGateway
from usage.models import UsageEvent

pytestmark = pytest.mark.django_db(transaction=True)

# An echo request: 12 prompt tokens, a 7-token answer. At $50,000 per million tokens either way
# it costs exactly 19 x $0.05 = $0.95, so budgets of a few dollars are spent in a few requests.
REQUEST_COST = Decimal("0.95")
ECHO = {"model": "pricey", "max_tokens": 7}
# What a hard limit reserves for it: its bound, every byte of the body as a token plus the
# per-message and per-request allowances, plus max_tokens; and that bound's cost.
ECHO_BOUND = prompt_bound({**ECHO, "messages": [{"role": "user", "content": "Hello there, gateway!"}]}) + 7
ECHO_WORST = ECHO_BOUND * Decimal("0.05")


@pytest.fixture
def gateway_():
    provider = provider_create(name="pricey-mock", kind="mock")
    model_create(
        name="pricey",
        provider=provider,
        upstream_model="mock/echo",
        prices=Prices(input=Decimal(50_000), output=Decimal(50_000)),
    )
    proxy = InProcessGateway()
    yield proxy
    proxy.close()


def new_key(**kwargs):
    return gateway_create(resource_group=ResourceGroupFactory(), name="limits", **kwargs)


def spent(api_key) -> Decimal:
    return sum((e.cost_usd for e in UsageEvent.objects.filter(api_key=api_key, status_code=200)), Decimal(0))


def at(*args) -> time_machine.travel:
    return time_machine.travel(datetime(*args, tzinfo=UTC), tick=False)


def test_a_soft_budget_lets_the_crossing_request_complete_and_rejects_the_next(gateway_):
    _, api_key, secret = new_key()
    spend_budget_create(api_key=api_key, limit_usd=2)

    statuses = [gateway_.chat(secret, **ECHO).status_code for _ in range(3)]
    rejected = gateway_.chat(secret, **ECHO)

    assert statuses == [200, 200, 200]  # $0.95, $1.90, then $2.85 crosses the $2 limit
    assert rejected.status_code == 429
    assert rejected.json()["error"]["code"] == "budget_exceeded"
    assert rejected.json()["error"]["type"] == "insufficient_quota"
    assert "$2.85 of $2" in rejected.json()["error"]["message"]
    assert spent(api_key) == 3 * REQUEST_COST


def test_a_hard_budget_never_lets_spend_pass_the_limit(gateway_):
    _, api_key, secret = new_key()
    limit = ECHO_WORST + REQUEST_COST  # room for one request's worst case after one request
    spend_budget_create(api_key=api_key, limit_usd=limit, mode=LimitMode.HARD)

    responses = [gateway_.chat(secret, **ECHO) for _ in range(3)]

    # the third could cost its worst case, more than the $limit - $1.90 left: refused up front
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert spent(api_key) == 2 * REQUEST_COST <= limit
    message = responses[2].json()["error"]["message"]
    assert f"could cost up to ${ECHO_WORST.normalize():f}" in message and "Hard mode refuses" in message


def test_an_upstream_failure_charges_nothing_and_releases_the_reservation(gateway_, fake_upstream):
    broken = provider_create(name="broken", kind="openai", base_url=fake_upstream.base_url)
    model_create(name="fake-500", provider=broken, prices=Prices(input=Decimal(50_000), output=Decimal(50_000)))
    _, api_key, secret = new_key()
    failing = {"model": "fake-500", "max_tokens": 7, "messages": [{"role": "user", "content": "Hello there, gateway!"}]}
    worst = (prompt_bound(failing) + 7) * Decimal("0.05")  # a little more than ECHO's: a longer model name
    spend_budget_create(api_key=api_key, limit_usd=worst, mode=LimitMode.HARD)

    assert gateway_.chat(secret, model="fake-500", max_tokens=7).status_code == 502
    assert gateway_.chat(secret, **ECHO).status_code == 200  # the whole budget was still there

    assert spent(api_key) == REQUEST_COST


@pytest.mark.parametrize(
    ("period", "last_second", "first_second"),
    [
        (RefreshPeriod.DAILY, (2026, 11, 22, 23, 59, 59), (2026, 11, 23, 0, 0, 0)),
        (RefreshPeriod.WEEKLY, (2026, 11, 29, 23, 59, 59), (2026, 11, 30, 0, 0, 0)),  # Sunday -> Monday
        (RefreshPeriod.MONTHLY, (2026, 12, 31, 23, 59, 59), (2027, 1, 1, 0, 0, 0)),  # 31-day month
        (RefreshPeriod.MONTHLY, (2026, 11, 30, 23, 59, 59), (2026, 12, 1, 0, 0, 0)),  # 30-day month
        (RefreshPeriod.MONTHLY, (2028, 2, 29, 23, 59, 59), (2028, 3, 1, 0, 0, 0)),  # leap February
    ],
)
def test_a_spent_budget_serves_again_at_the_first_second_of_its_next_window(
    gateway_, period, last_second, first_second
):
    _, api_key, secret = new_key()
    spend_budget_create(api_key=api_key, limit_usd=1, refresh_period=period)

    with at(*last_second):
        assert gateway_.chat(secret, **ECHO).status_code == 200
        assert gateway_.chat(secret, **ECHO).status_code == 200  # $1.90: over
        assert gateway_.chat(secret, **ECHO).status_code == 429
    with at(*first_second):
        assert gateway_.chat(secret, **ECHO).status_code == 200  # no job has run


def test_a_budget_without_refresh_period_never_resets(gateway_):
    _, api_key, secret = new_key()
    spend_budget_create(api_key=api_key, limit_usd=1)
    with at(2026, 11, 22, 12, 0, 0):
        gateway_.chat(secret, **ECHO)
        gateway_.chat(secret, **ECHO)
    with at(2027, 11, 22, 12, 0, 0):
        assert gateway_.chat(secret, **ECHO).json()["error"]["code"] == "budget_exceeded"


def test_a_daily_token_quota_rolls_over_at_utc_midnight(gateway_):
    gateway, api_key, secret = new_key()
    token_quota_set(gateway=gateway, limit_tokens=20, refresh_period=RefreshPeriod.DAILY)
    with at(2026, 11, 22, 23, 59, 59):
        assert [gateway_.chat(secret, **ECHO).status_code for _ in range(3)] == [200, 200, 429]
    with at(2026, 11, 23, 0, 0, 0):
        assert gateway_.chat(secret, **ECHO).status_code == 200


def test_a_hard_token_quota_reserves_the_bound_of_prompt_and_max_tokens(gateway_):
    _, api_key, secret = new_key()
    token_quota_set(api_key=api_key, limit_tokens=ECHO_BOUND + 19, mode=LimitMode.HARD)

    # each request reserves its bound and uses 19 (12 prompt tokens + 7): the third's bound
    # does not fit in what is left after two, and the quota is not used up, so no suspension
    responses = [gateway_.chat(secret, **ECHO) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert f"could use up to {ECHO_BOUND:,}" in responses[2].json()["error"]["message"]
    assert api_key.__class__.objects.get(pk=api_key.pk).status == "active"
    assert sum(e.total_tokens for e in UsageEvent.objects.filter(api_key=api_key)) == 38


def test_an_expired_key_is_rejected_from_the_exact_second_of_its_expiry(gateway_):
    expiry = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
    _, _, secret = new_key(expires_at=expiry)
    with time_machine.travel(expiry - timedelta(microseconds=1), tick=False):
        assert gateway_.chat(secret, **ECHO).status_code == 200
    with time_machine.travel(expiry, tick=False):
        response = gateway_.chat(secret, **ECHO)
    assert (response.status_code, response.json()["error"]["code"]) == (401, "key_expired")


def test_rpm_rejects_with_retry_after_and_serves_again_next_minute(gateway_):
    _, api_key, secret = new_key()
    rate_limit_set(api_key=api_key, tokens_per_minute=None, requests_per_minute=2)

    with at(2026, 11, 22, 10, 15, 40):
        first = gateway_.chat(secret, **ECHO)
        gateway_.chat(secret, **ECHO)
        rejected = gateway_.chat(secret, **ECHO)
    with at(2026, 11, 22, 10, 16, 0):
        assert gateway_.chat(secret, **ECHO).status_code == 200

    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert first.headers["x-ratelimit-reset-requests"] == "20s"
    assert rejected.status_code == 429
    assert rejected.json()["error"]["code"] == "rate_limit_exceeded"
    assert rejected.headers["retry-after"] == "20"


def test_tpm_counts_the_prompt_estimate_before_and_the_real_usage_after(gateway_):
    gateway, _, secret = new_key()
    rate_limit_set(gateway=gateway, tokens_per_minute=40, requests_per_minute=None)

    with at(2026, 11, 22, 10, 15, 0):
        first = gateway_.chat(secret, **ECHO)  # reserves 12, then counts 19
        second = gateway_.chat(secret, **ECHO)  # 19 + 12 <= 40; then 38
        third = gateway_.chat(secret, **ECHO)  # 38 + 12 > 40

    assert first.headers["x-ratelimit-limit-tokens"] == "40"
    assert first.headers["x-ratelimit-remaining-tokens"] == "28"
    assert second.status_code == 200
    assert third.status_code == 429
    assert third.json()["error"]["type"] == "tokens"
    assert "gateway" in third.json()["error"]["message"]
    assert third.headers["retry-after"] == "60"


def test_a_request_must_pass_every_level_and_the_rejection_names_the_level(gateway_):
    gateway, api_key, secret = new_key()
    spend_budget_create(api_key=api_key, limit_usd=100)
    spend_budget_create(resource_group=gateway.resource_group, limit_usd=1)

    gateway_.chat(secret, **ECHO)
    gateway_.chat(secret, **ECHO)
    rejected = gateway_.chat(secret, **ECHO).json()["error"]

    assert rejected["code"] == "budget_exceeded"
    assert "resource group" in rejected["message"]


def test_a_raised_budget_holds_on_the_next_request(gateway_):
    _, api_key, secret = new_key()
    budget = spend_budget_create(api_key=api_key, limit_usd=1)
    gateway_.chat(secret, **ECHO)
    gateway_.chat(secret, **ECHO)
    assert gateway_.chat(secret, **ECHO).status_code == 429

    spend_budget_update(budget=budget, limit_usd=10)
    assert gateway_.chat(secret, **ECHO).status_code == 200


def test_the_key_reads_its_own_limits_and_budget(gateway_):
    gateway, api_key, secret = new_key()
    spend_budget_create(api_key=api_key, limit_usd=10, refresh_period=RefreshPeriod.MONTHLY)
    token_quota_set(gateway=gateway, limit_tokens=1000)
    with at(2026, 11, 22, 10, 0, 0):
        gateway_.chat(secret, **ECHO)
        key = gateway_.get("/v1/key", secret).json()
        quota = gateway_.get(f"/v1/quotas?quotaEntityId=api_key_id_{api_key.pk}", secret)
        other = gateway_.get("/v1/quotas?quotaEntityId=api_key_id_999999", secret)

    assert key["quotaEntityId"] == f"api_key_id_{api_key.pk}"
    assert key["gateway"] == {"id": gateway.pk, "name": "limits"}
    by_type = {item["type"]: item for item in key["limits"]}
    assert by_type["spend_budget"]["used"] == 0.95 and by_type["spend_budget"]["remaining"] == 9.05
    assert by_type["spend_budget"]["resetsAt"] == "2026-12-01T00:00:00Z"
    assert (by_type["token_quota"]["level"], by_type["token_quota"]["used"]) == ("gateway", 19)
    assert (by_type["token_quota"]["windowStart"], by_type["token_quota"]["resetsAt"]) == (None, None)
    assert by_type["spend_budget"]["windowStart"] == "2026-11-01T00:00:00Z"
    assert quota.json() == {
        "quotaEntityId": f"api_key_id_{api_key.pk}",
        "apiKeyName": api_key.name,
        "limitAmount": 10.0,
        "currentSpend": 0.95,
        "refreshPeriod": "monthly",
        "active": True,
    }
    assert (other.status_code, other.json()) == (404, {"error": "Quota not found"})


def test_a_deleted_gateway_stops_its_keys(gateway_):
    gateway, _, secret = new_key()
    Gateway.objects.filter(pk=gateway.pk).update(deleted_at=datetime.now(UTC))
    assert gateway_.chat(secret, **ECHO).json()["error"]["code"] == "gateway_disabled"


def test_two_budgets_created_at_once_for_one_key_give_one_budget_and_a_budget_exists_error():
    import threading

    from django.db import connection

    from quotas.models import SpendBudget
    from quotas.services import BudgetExists

    _, api_key, _ = new_key()
    barrier, outcomes = threading.Barrier(2), []

    def create():
        barrier.wait()
        try:
            spend_budget_create(api_key=api_key, limit_usd=5)
            outcomes.append("created")
        except BudgetExists:
            outcomes.append("exists")
        finally:
            connection.close()

    threads = [threading.Thread(target=create) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["created", "exists"]
    assert SpendBudget.objects.filter(api_key=api_key).count() == 1
