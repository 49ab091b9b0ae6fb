"""The data plane on a Redis Cluster (SPEC §9 "Scale-out"): three masters on loopback, two
gateway worker processes with REDIS_URL=redis+cluster://…, hard limits on the key, its gateway
and its group checked and reserved by one Lua script, under 64 simultaneous requests from four
client processes. No limit is overshot, every counter equals the usage events in the database,
and all of one request's keys (its counters, their epochs, its group's config version) are in one
hash slot, as the cluster itself computes it."""

from __future__ import annotations

import contextlib
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db.models import Sum

from core.freshness import group_version_name
from core.redis import sync_client
from gateway.pricing import Prices
from gateway.services import model_create, provider_create
from gateway.setup import gateway_create
from quotas.counters import counter_name, epoch_key, minute_tag, usd_to_units, window_tag
from quotas.estimate import prompt_bound
from quotas.models import LimitMode, RefreshPeriod
from quotas.services import rate_limit_set, spend_budget_create, token_quota_set
from tests.conftest import _server_env, _wait_until_server_is_quiet
from tests.factories import ResourceGroupFactory
from tests.support.costs import events_cost
from tests.support.live_server import LiveServer
from tests.support.load import burst
from tests.support.redis_topologies import LocalRedisCluster, wait_until
from usage.models import UsageEvent

# A 12-token prompt, a 7-token answer; the hard limits reserve every prompt byte as a token plus
# max_tokens (135 tokens, $6.75), so fewer requests are admitted than the limits' real costs allow.
BODY = {"model": "pricey", "max_tokens": 7, "messages": [{"role": "user", "content": "Hello there, gateway!"}]}
PRICE = Decimal(50_000)  # USD per million tokens, input and output: $0.95 a request
PRICES = Prices(input=PRICE, output=PRICE)
BOUND_TOKENS = prompt_bound(BODY) + 7
BOUND_USD = BOUND_TOKENS * PRICE / 1_000_000


@pytest.fixture
def redis_cluster(tmp_path):
    cluster = LocalRedisCluster(tmp_path / "cluster")
    yield cluster
    cluster.stop()


@pytest.fixture
def server(redis_cluster, transactional_db, tmp_path):
    from gateway.services import mock_provider_ensure

    mock_provider_ensure()
    env = {
        **_server_env(),
        "REDIS_URL": redis_cluster.url,
        # A cluster cannot be Celery's broker: the settings require one of its own.
        "CELERY_BROKER_URL": f"sqla+sqlite:///{tmp_path / 'celery.sqlite3'}",
    }
    live = LiveServer(env, workers=2)
    yield live
    live.stop()
    _wait_until_server_is_quiet()


def test_hard_limits_hold_on_a_redis_cluster_with_all_of_a_requests_keys_in_one_slot(server, redis_cluster):
    provider = provider_create(name="pricey-mock", kind="mock", settings={"latency_ms": 50})
    model_create(name="pricey", provider=provider, upstream_model="mock/echo", prices=PRICES)
    group = ResourceGroupFactory()
    gateway, key, secret = gateway_create(resource_group=group, name="on-a-cluster")
    # Five bounds fit in each limit, so at least five are served whenever they arrive; 64 requests
    # really cost $60.80 and 1,216 tokens, so both limits refuse most of them.
    spend_limit, token_limit = Decimal(36), 40 * 19
    floor = min(int(spend_limit / BOUND_USD), token_limit // BOUND_TOKENS)
    spend_budget_create(api_key=key, limit_usd=spend_limit, refresh_period=RefreshPeriod.MONTHLY, mode=LimitMode.HARD)
    token_quota_set(gateway=gateway, limit_tokens=token_limit, refresh_period=RefreshPeriod.DAILY, mode=LimitMode.HARD)
    spend_budget_create(resource_group=group, limit_usd=Decimal(1_000))
    rate_limit_set(api_key=key, requests_per_minute=10_000, tokens_per_minute=None)

    results = burst(f"{server.v1}/chat/completions", secret, BODY)

    outcome = Counter((status, code) for status, code, _ in results)
    served = outcome[(200, "")]
    assert served + outcome[(429, "budget_exceeded")] + outcome[(429, "token_quota_exceeded")] == 64, outcome
    assert floor == 5 and served >= floor, outcome  # as many as their bounds fit, at least
    events = UsageEvent.objects.filter(api_key=key, status_code=200)
    wait_until(lambda: events.count() == served, 10, "the usage events were not all written")
    spent = events_cost(events)
    tokens = events.aggregate(tokens=Sum("total_tokens"))["tokens"]
    assert spent <= spend_limit and tokens <= token_limit  # overshoot: none

    now = datetime.now(UTC)
    names = {
        counter_name("spend", "api_key", key.pk, window_tag(RefreshPeriod.MONTHLY, now), group_id=group.pk): (
            usd_to_units(spent)
        ),
        counter_name("tokens", "gateway", gateway.pk, window_tag(RefreshPeriod.DAILY, now), group_id=group.pk): tokens,
        counter_name("spend", "resource_group", group.pk, "life", group_id=group.pk): usd_to_units(spent),
    }
    client = sync_client(redis_cluster.url)
    try:
        # Settles run after each answer: give the last ones a moment.
        with contextlib.suppress(RuntimeError):
            wait_until(lambda: {n: int(client.get(n) or -1) for n in names} == names, 5, "counters differ")
        assert {name: int(client.get(name) or -1) for name in names} == names
        rpm = counter_name("rpm", "api_key", key.pk, minute_tag(now), group_id=group.pk)
        keys = [*names, *(epoch_key(name) for name in names), group_version_name(group.pk)]
        assert all(client.exists(name) for name in keys)
        slots = {client.execute_command("CLUSTER KEYSLOT", name) for name in [*keys, rpm, epoch_key(rpm)]}
        assert len(slots) == 1, slots
    finally:
        client.close()
