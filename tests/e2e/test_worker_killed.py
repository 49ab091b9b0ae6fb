"""A worker killed with requests in flight (SPEC §3: a request that reached the provider is
metered even if the worker that sent it dies). The gateway process is SIGKILLed while five
requests wait on a slow provider, and never restarted. Its intents, written before forwarding,
are turned into `interrupted` usage events charged at the reserved worst case, by the beat job
or by another gateway process on the same host, and settled against the shared counters."""

from __future__ import annotations

import contextlib
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal

import openai
import pytest
import redis
from django.conf import settings
from django.utils import timezone

from gateway.pricing import Prices
from gateway.services import model_create, provider_create
from gateway.setup import gateway_create
from quotas.counters import counter_name, usd_to_units, window_tag
from quotas.jobs import recover_usage
from quotas.models import LimitMode, RefreshPeriod
from quotas.services import spend_budget_create
from tests.conftest import _server_env, _wait_until_server_is_quiet
from tests.factories import ResourceGroupFactory
from tests.support.costs import events_cost
from tests.support.live_server import LiveServer
from usage.models import UsageEvent

IN_FLIGHT = 5
BODY = {"model": "slow", "max_tokens": 20, "messages": [{"role": "user", "content": "Take your time."}]}
PRICES = Prices(input=Decimal(3), output=Decimal(15))  # USD per million tokens


@pytest.fixture
def servers(transactional_db):
    """Start gateway processes on the test database (stopped, or found dead, at the end)."""
    started: list[LiveServer] = []

    def start() -> LiveServer:
        live = LiveServer({**_server_env(), "AIGW_UPSTREAM_TIMEOUT_SECONDS": "30"})
        started.append(live)
        return live

    yield start
    for live in started:
        live.stop()
    _wait_until_server_is_quiet()


def _slow_requests_seen(fake_upstream) -> int:
    return sum(1 for r in fake_upstream.requests if r["json"].get("model") == "fake-slow")


def _wait_for(condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize("recovered_by", ["the beat job", "another gateway process"])
def test_requests_in_flight_on_a_killed_worker_are_metered_as_interrupted_at_their_worst_case(
    servers, fake_upstream, recovered_by
):
    provider = provider_create(name="slow-upstream", kind="openai", base_url=fake_upstream.base_url)
    model_create(name="slow", provider=provider, upstream_model="fake-slow", prices=PRICES)
    gateway, key, secret = gateway_create(resource_group=ResourceGroupFactory(), name="dies")
    spend_budget_create(api_key=key, limit_usd=Decimal(100), refresh_period=RefreshPeriod.DAILY, mode=LimitMode.HARD)
    spend_budget_create(gateway=gateway, limit_usd=Decimal(100))
    doomed = servers()
    seen_before = _slow_requests_seen(fake_upstream)

    def call() -> None:
        client = openai.OpenAI(base_url=doomed.v1, api_key=secret, max_retries=0, timeout=20)
        with contextlib.suppress(openai.APIConnectionError):  # the worker dies under it
            client.chat.completions.create(**BODY)

    callers = [threading.Thread(target=call) for _ in range(IN_FLIGHT)]
    for caller in callers:
        caller.start()
    assert _wait_for(lambda: _slow_requests_seen(fake_upstream) - seen_before == IN_FLIGHT)
    doomed.process.kill()  # SIGKILL, by PID; nothing restarts it
    doomed.process.wait(10)
    for caller in callers:
        caller.join(20)
    assert UsageEvent.objects.filter(api_key=key).count() == 0  # it died before metering them

    if recovered_by == "the beat job":
        assert recover_usage(timezone.now()) == IN_FLIGHT
    else:
        survivor = servers()
        fast = openai.OpenAI(base_url=survivor.v1, api_key=secret, max_retries=0)
        # Its first metered request starts its usage writer, which recovers what the dead one left.
        model_create(name="quick", provider=provider, upstream_model="fake-model", prices=PRICES)
        fast.chat.completions.create(model="quick", messages=[{"role": "user", "content": "Hi"}], max_tokens=5)
        assert _wait_for(lambda: UsageEvent.objects.filter(api_key=key, error_code="interrupted").count() >= 1)

    interrupted = UsageEvent.objects.filter(api_key=key, error_code="interrupted")
    assert _wait_for(lambda: interrupted.count() == IN_FLIGHT)
    served_by_the_provider = _slow_requests_seen(fake_upstream) - seen_before
    assert interrupted.count() == served_by_the_provider  # unmetered: 0
    assert {(e.status_code, e.model_requested, e.api_key_name) for e in interrupted} == {(500, "slow", key.name)}
    # Charged the worst case that the hard budget reserved: every prompt byte as a token, plus
    # max_tokens, at the model's prices.
    costs = {e.cost_usd for e in interrupted}
    assert len(costs) == 1 and costs.pop() > 0
    assert all(e.output_tokens == BODY["max_tokens"] and e.input_tokens > 0 for e in interrupted)

    if settings.REDIS_URL:  # the shared counters hold exactly what the usage events say
        now = datetime.now(UTC)
        client = redis.from_url(settings.REDIS_URL)
        group_id = gateway.resource_group_id
        for name, events in (
            (
                counter_name("spend", "api_key", key.pk, window_tag(RefreshPeriod.DAILY, now), group_id=group_id),
                {"api_key": key},
            ),
            (counter_name("spend", "gateway", gateway.pk, "life", group_id=group_id), {"gateway": gateway}),
        ):
            spent = events_cost(UsageEvent.objects.filter(**events))
            assert _wait_for(lambda name=name, spent=spent: int(client.get(name) or 0) == usd_to_units(spent), 5), (
                name,
                client.get(name),
                usd_to_units(spent),
            )
        client.close()
