"""Limits that hold under concurrency: 64 simultaneous requests from 4 client processes against
3 gateway worker processes sharing their counters in Redis (one process on the embedded
default), through real HTTP. Hard limits are tested against a provider that counts more tokens
than any real one (`fake-bytes`), so that they hold whatever the provider's tokenizer."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest

from gateway.pricing import Prices, TokenUsage
from gateway.services import model_create, provider_create
from gateway.setup import gateway_create
from quotas.estimate import prompt_bound, prompt_tokens
from quotas.models import LimitMode
from quotas.services import rate_limit_set, spend_budget_create, token_quota_set
from tests.factories import ResourceGroupFactory
from tests.support.fake_upstream import bytes_usage
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


# A realistic request to a provider that counts one token per UTF-8 byte of everything it
# tokenizes, plus the largest overheads any provider adds, and writes every output token it is
# allowed: o200k estimates its prompt at a fraction of that count. It sets no max_tokens, so the
# gateway must send the model's output limit (64) upstream for its bound to hold.
BYTES_BODY = {
    "model": "bytes",
    "messages": [
        {"role": "system", "content": "Du bist ein hilfreicher Assistent. Réponds brièvement, s'il te plaît."},
        {"role": "user", "name": "Zoë", "content": "Wie viele Bytes hat 「こんにちは、世界」? 🌍🚀 Erkläre kurz."},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "count", "arguments": '{"text": "日本語"}'}}
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"bytes": 9, "characters": 3}'},
    ],
    "tools": [
        {"type": "function", "function": {
            "name": "count", "description": "Counts the UTF-8 bytes of a text.",
            "parameters": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
        }}
    ],
}  # fmt: skip
BYTES_OUTPUT_LIMIT = 64
BYTES_PRICES = Prices(input=Decimal(1_000), output=Decimal(4_000))  # USD per million tokens


@pytest.fixture
def bytes_key(cluster, fake_upstream):
    provider = provider_create(name="counts-bytes", kind="openai", base_url=fake_upstream.base_url)
    model_create(
        name="bytes",
        provider=provider,
        upstream_model="fake-bytes",
        prices=BYTES_PRICES,
        max_output_tokens=BYTES_OUTPUT_LIMIT,
    )
    return gateway_create(resource_group=ResourceGroupFactory(), name="bytes")


def _counted_by_the_provider() -> dict:
    return bytes_usage({**BYTES_BODY, "max_completion_tokens": BYTES_OUTPUT_LIMIT})


def test_a_hard_budget_holds_against_a_provider_that_counts_every_byte(cluster, bytes_key, fake_upstream):
    _, api_key, secret = bytes_key
    usage = _counted_by_the_provider()
    real_cost = BYTES_PRICES.cost(
        TokenUsage(input_tokens=usage["prompt_tokens"], output_tokens=usage["completion_tokens"])
    )
    assert usage["prompt_tokens"] > 3 * prompt_tokens(BYTES_BODY["messages"])  # o200k's estimate is far below
    limit = Decimal(5)
    spend_budget_create(api_key=api_key, limit_usd=limit, mode=LimitMode.HARD)
    fake_upstream.requests.clear()

    outcome = Counter((status, code) for status, code, _ in burst(f"{cluster.v1}/chat/completions", secret, BYTES_BODY))

    served = outcome[(200, "")]
    assert served + outcome[(429, "budget_exceeded")] == 64
    worst = (prompt_bound(BYTES_BODY) * BYTES_PRICES.input + BYTES_OUTPUT_LIMIT * BYTES_PRICES.output) / 1_000_000
    assert served >= int(limit / worst)  # as many as their bounds fit, at least
    events = _settled(api_key, served)
    assert sum(e.cost_usd for e in events) == served * real_cost <= limit  # overshoot: none
    assert all(r["json"]["max_completion_tokens"] == BYTES_OUTPUT_LIMIT for r in fake_upstream.requests)


def test_a_hard_token_quota_holds_against_a_provider_that_counts_every_byte(cluster, bytes_key):
    gateway, api_key, secret = bytes_key
    per_request = _counted_by_the_provider()["total_tokens"]
    limit = 8 * per_request + per_request // 2
    token_quota_set(gateway=gateway, limit_tokens=limit, mode=LimitMode.HARD)

    outcome = Counter((status, code) for status, code, _ in burst(f"{cluster.v1}/chat/completions", secret, BYTES_BODY))

    served = outcome[(200, "")]
    assert served + outcome[(429, "token_quota_exceeded")] == 64
    assert served >= limit // (prompt_bound(BYTES_BODY) + BYTES_OUTPUT_LIMIT)
    assert sum(e.total_tokens for e in _settled(api_key, served)) == served * per_request <= limit


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
