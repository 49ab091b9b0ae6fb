"""Limits that hold under concurrency: 64 simultaneous requests from 4 client processes against
3 gateway worker processes sharing their counters in Redis (one process on the embedded
default), through real HTTP."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest

from gateway.pricing import Prices
from gateway.services import model_create, provider_create
from gateway.setup import gateway_create
from quotas.models import LimitMode
from quotas.services import rate_limit_set, spend_budget_create, token_quota_set
from tests.factories import ResourceGroupFactory
from tests.support.load import burst
from usage.models import UsageEvent

# An echo request of 12 prompt tokens and a 7-token answer (max_tokens 7, so the worst case a
# hard limit reserves is exactly what it uses) costs 19 x $0.05 = $0.95.
REQUEST_COST = Decimal("0.95")
BODY = {"model": "pricey", "max_tokens": 7, "messages": [{"role": "user", "content": "Hello there, gateway!"}]}
N = 10


@pytest.fixture
def key(cluster):
    provider = provider_create(name="pricey-mock", kind="mock", settings={"latency_ms": 50})
    model_create(
        name="pricey",
        provider=provider,
        upstream_model="mock/echo",
        prices=Prices(input=Decimal(50_000), output=Decimal(50_000)),
    )
    return gateway_create(resource_group=ResourceGroupFactory(), name="burst")


def fire(cluster, secret) -> Counter:
    results = burst(f"{cluster.v1}/chat/completions", secret, BODY)
    assert len(results) == 64
    return Counter((status, code) for status, code, _ in results)


def test_a_hard_budget_that_allows_exactly_n_requests_serves_exactly_n_of_64(cluster, key):
    _, api_key, secret = key
    limit = N * REQUEST_COST
    spend_budget_create(api_key=api_key, limit_usd=limit, mode=LimitMode.HARD)

    outcome = fire(cluster, secret)

    assert outcome == Counter({(200, ""): N, (429, "budget_exceeded"): 64 - N})
    events = _settled(api_key, N)
    assert sum(e.cost_usd for e in events) == limit


def test_a_hard_token_quota_that_allows_exactly_n_requests_serves_exactly_n_of_64(cluster, key):
    gateway, api_key, secret = key
    token_quota_set(gateway=gateway, limit_tokens=N * 19, mode=LimitMode.HARD)

    outcome = fire(cluster, secret)

    assert outcome == Counter({(200, ""): N, (429, "token_quota_exceeded"): 64 - N})
    assert sum(e.total_tokens for e in _settled(api_key, N)) == N * 19


def test_a_soft_budget_overshoots_by_no_more_than_the_requests_in_flight(cluster, key):
    _, api_key, secret = key
    limit = N * REQUEST_COST
    spend_budget_create(api_key=api_key, limit_usd=limit)

    outcome = fire(cluster, secret)
    served = outcome[(200, "")]

    assert served >= N and served + outcome[(429, "budget_exceeded")] == 64
    events = _settled(api_key, served)
    assert sum(e.cost_usd for e in events) == served * REQUEST_COST  # every served request is metered
    assert sum(e.cost_usd for e in events) - limit <= 64 * REQUEST_COST
    followup = burst(f"{cluster.v1}/chat/completions", secret, BODY, processes=1, per_process=1)
    assert followup[0][:2] == (429, "budget_exceeded")


def test_tpm_admits_no_more_than_the_minute_allows_and_says_when_to_retry(cluster, key):
    _, api_key, secret = key
    rate_limit_set(api_key=api_key, tokens_per_minute=N * 12, requests_per_minute=None)
    _wait_for_a_fresh_minute()

    results = burst(f"{cluster.v1}/chat/completions", secret, BODY)
    served = sum(1 for status, _, _ in results if status == 200)

    assert (N * 12) // 19 <= served <= N  # 12 estimated per request; 19 counted once it is done
    rejected = [r for r in results if r[0] == 429]
    assert rejected and all(code == "rate_limit_exceeded" and 1 <= int(retry) <= 60 for _, code, retry in rejected)


def _settled(api_key, served: int) -> list[UsageEvent]:
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        events = list(UsageEvent.objects.filter(api_key=api_key, status_code=200))
        if len(events) >= served:
            return events
        time.sleep(0.05)
    raise AssertionError(f"only {len(events)} of {served} usage events were written")


def _wait_for_a_fresh_minute() -> None:
    """A burst takes about two seconds; start it early in a UTC minute so one window holds it."""
    import time

    if time.time() % 60 > 50:
        time.sleep(61 - time.time() % 60)
