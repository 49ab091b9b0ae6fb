"""Counters that survive Redis (SPEC §3): Redis loses every counter (FLUSHALL, or SIGKILL and a
fresh empty restart) while hard-limited requests are in flight from several client processes
through two gateway worker processes. Afterwards every spend and token counter equals the
usage events in the database, to the last 1e-10 USD and token: no reservation was subtracted
from a rebuilt counter that never held it, and no request was left out or counted twice."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import redis
from django.db.models import Sum

from gateway.pricing import Prices
from gateway.services import model_create, provider_create
from gateway.setup import gateway_create
from quotas.counters import counter_name, usd_to_units, window_tag
from quotas.models import LimitMode, RefreshPeriod
from quotas.services import spend_budget_create, token_quota_set
from tests.conftest import _server_env, _wait_until_server_is_quiet
from tests.factories import ResourceGroupFactory
from tests.support.costs import events_cost
from tests.support.live_server import LiveServer
from tests.support.load import sustain
from tests.support.redis_process import RedisProcess
from usage.models import UsageEvent

# Echo of a 12-token prompt with a 7-token answer; the hard limits reserve the prompt's bytes as
# tokens plus max_tokens, far more than it uses, so a wrongly subtracted reservation shows.
BODY = {"model": "slow-pricey", "max_tokens": 7, "messages": [{"role": "user", "content": "Hello there, gateway!"}]}
PRICES = Prices(input=Decimal("3.25"), output=Decimal("17.5"))  # USD per million tokens


@pytest.fixture
def redis_server(tmp_path):
    server = RedisProcess(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def server(redis_server, transactional_db):
    from gateway.services import mock_provider_ensure

    mock_provider_ensure()
    live = LiveServer({**_server_env(), "REDIS_URL": redis_server.url}, workers=2)
    yield live
    live.stop()
    _wait_until_server_is_quiet()


def _stored(key) -> int:
    return UsageEvent.objects.filter(api_key=key, status_code=200).count()


def _wait_for(condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _counters_and_database(client: redis.Redis, key, gateway) -> dict[str, tuple[int | None, int]]:
    """Per counter: (what Redis holds, what the usage events in the database add up to)."""
    now = datetime.now(UTC)
    monthly, daily = window_tag(RefreshPeriod.MONTHLY, now), window_tag(RefreshPeriod.DAILY, now)
    key_events = UsageEvent.objects.filter(api_key=key)
    gateway_events = UsageEvent.objects.filter(gateway=gateway)
    cost = events_cost(key_events)
    tokens = key_events.aggregate(tokens=Sum("total_tokens"))["tokens"] or 0
    gateway_cost = events_cost(gateway_events)
    group_id = gateway.resource_group_id
    names = {
        "key spend (hard)": (counter_name("spend", "api_key", key.pk, monthly, group_id=group_id), usd_to_units(cost)),
        "key tokens (hard)": (counter_name("tokens", "api_key", key.pk, daily, group_id=group_id), tokens),
        "gateway spend (soft)": (
            counter_name("spend", "gateway", gateway.pk, "life", group_id=group_id),
            usd_to_units(gateway_cost),
        ),
    }
    out = {}
    for label, (name, in_database) in names.items():
        raw = client.get(name)
        out[label] = (None if raw is None else int(raw), in_database)
    return out


@pytest.mark.parametrize("fault", ["flushed", "killed and restarted"])
def test_counters_rebuilt_while_requests_are_in_flight_equal_the_database_afterwards(server, redis_server, fault):
    provider = provider_create(name="slow-pricey-mock", kind="mock", settings={"latency_ms": 250})
    model_create(name="slow-pricey", provider=provider, upstream_model="mock/echo", prices=PRICES)
    gateway, key, secret = gateway_create(resource_group=ResourceGroupFactory(), name="survives-redis")
    spend_budget_create(
        api_key=key, limit_usd=Decimal(10_000), refresh_period=RefreshPeriod.MONTHLY, mode=LimitMode.HARD
    )
    token_quota_set(api_key=key, limit_tokens=10**9, refresh_period=RefreshPeriod.DAILY, mode=LimitMode.HARD)
    spend_budget_create(gateway=gateway, limit_usd=Decimal(10_000))

    results: list[tuple[int, str, str]] = []
    load = threading.Thread(
        target=lambda: results.extend(
            sustain(f"{server.v1}/chat/completions", secret, BODY, processes=3, concurrency=8, seconds=4.0)
        )
    )
    load.start()
    assert _wait_for(lambda: _stored(key) >= 40), "the load did not start"
    if fault == "flushed":
        redis.Redis(port=redis_server.port).flushall()
    else:
        redis_server.kill()
        redis_server.start()
    lost_at = _stored(key)
    load.join()

    answered = Counter(status for status, _, _ in results)
    served = answered[200]
    assert set(answered) <= {200, 503}, answered  # 503 only while Redis was down
    assert _wait_for(lambda: _stored(key) == served), (served, _stored(key))
    assert served > lost_at + 40, "too few requests were served after Redis lost its counters"

    client = redis.Redis(port=redis_server.port)
    _wait_for(lambda: all(c == d for c, d in _counters_and_database(client, key, gateway).values()), timeout=5)
    counters = _counters_and_database(client, key, gateway)
    client.close()
    assert {label: counter - database for label, (counter, database) in counters.items()} == {
        label: 0 for label in counters
    }, counters
