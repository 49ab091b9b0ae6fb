"""The data plane behind Redis Sentinel (SPEC §9 "Scale-out", §3 "When a dependency is down"):
two gateway worker processes with REDIS_URL=redis+sentinel://…, a primary with one replica and
three Sentinels. The primary is killed (SIGKILL) during traffic, after its replica stopped
receiving its writes, as asynchronous replication allows: the promoted replica lacks the last
reservations and settles. Clients get only 200s, the hard limit's 429s, or a clean 503
`service_unavailable` while there is no primary, never a 500; service resumes by itself; the
hard token quota, reached after the failover, is not overshot; and every counter equals the usage
events in the database without the reconcile job having anything to raise.

Celery's broker follows the same Sentinels in kombu's `sentinel://` form."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import redis
from django.db.models import Sum
from django.utils import timezone

from core.redis import celery_broker, sync_client
from gateway.pricing import Prices
from gateway.services import model_create, provider_create
from gateway.setup import gateway_create
from quotas.counters import counter_name, usd_to_units, window_tag
from quotas.jobs import reconcile_counters
from quotas.models import LimitMode, RefreshPeriod
from quotas.services import spend_budget_create, token_quota_set
from tests.conftest import _server_env, _wait_until_server_is_quiet
from tests.factories import ResourceGroupFactory
from tests.support.costs import events_cost
from tests.support.live_server import LiveServer
from tests.support.load import sustain
from tests.support.redis_topologies import LocalSentinels, wait_until
from usage.models import UsageEvent

# A 12-token prompt and a 7-token answer: 19 tokens counted; a hard limit reserves every prompt
# byte as a token plus max_tokens, far more, so a reservation wrongly kept or lost shows.
BODY = {"model": "quick", "max_tokens": 7, "messages": [{"role": "user", "content": "Hello there, gateway!"}]}
PRICES = Prices(input=Decimal("3.25"), output=Decimal("17.5"))  # USD per million tokens
TOKENS_PER_REQUEST = 19
QUOTA_REQUESTS = 260  # the hard token quota: this many requests' tokens, reached after the failover


@pytest.fixture
def sentinels(tmp_path):
    setup = LocalSentinels(tmp_path / "sentinel")
    yield setup
    setup.stop()


@pytest.fixture
def server(sentinels, transactional_db, settings):
    from gateway.services import mock_provider_ensure

    settings.REDIS_URL = sentinels.url  # this process's config-version bumps and jobs use it too
    mock_provider_ensure()
    live = LiveServer({**_server_env(), "REDIS_URL": sentinels.url}, workers=2)
    yield live
    live.stop()
    _wait_until_server_is_quiet()


def _counters_and_database(url: str, key, gateway) -> dict[str, tuple[int | None, int]]:
    """Per counter: (what the primary holds, what the usage events in the database add up to)."""
    now = datetime.now(UTC)
    group_id = gateway.resource_group_id
    key_events = UsageEvent.objects.filter(api_key=key)
    cost = events_cost(key_events)
    tokens = key_events.aggregate(tokens=Sum("total_tokens"))["tokens"] or 0
    gateway_cost = events_cost(UsageEvent.objects.filter(gateway=gateway))
    monthly, daily = window_tag(RefreshPeriod.MONTHLY, now), window_tag(RefreshPeriod.DAILY, now)
    names = {
        "key tokens (hard)": (counter_name("tokens", "api_key", key.pk, daily, group_id=group_id), tokens),
        "key spend (hard)": (counter_name("spend", "api_key", key.pk, monthly, group_id=group_id), usd_to_units(cost)),
        "gateway spend (soft)": (
            counter_name("spend", "gateway", gateway.pk, "life", group_id=group_id),
            usd_to_units(gateway_cost),
        ),
    }
    client = sync_client(url)
    try:
        raw = {label: client.get(name) for label, (name, _) in names.items()}
    finally:
        client.close()
    return {label: (None if raw[label] is None else int(raw[label]), names[label][1]) for label in names}


def test_a_failover_that_lost_the_last_writes_during_traffic_loses_no_limit_and_no_usage(server, sentinels):
    provider = provider_create(name="quick-mock", kind="mock", settings={"latency_ms": 100})
    model_create(name="quick", provider=provider, upstream_model="mock/echo", prices=PRICES)
    gateway, key, secret = gateway_create(resource_group=ResourceGroupFactory(), name="behind-sentinel")
    limit_tokens = QUOTA_REQUESTS * TOKENS_PER_REQUEST
    token_quota_set(api_key=key, limit_tokens=limit_tokens, refresh_period=RefreshPeriod.DAILY, mode=LimitMode.HARD)
    spend_budget_create(
        api_key=key, limit_usd=Decimal(10_000), refresh_period=RefreshPeriod.MONTHLY, mode=LimitMode.HARD
    )
    spend_budget_create(gateway=gateway, limit_usd=Decimal(10_000))
    stored = UsageEvent.objects.filter(api_key=key, status_code=200)

    results: list[tuple[int, str, str]] = []
    load = threading.Thread(
        target=lambda: results.extend(
            sustain(f"{server.v1}/chat/completions", secret, BODY, processes=3, concurrency=8, seconds=8.0)
        )
    )
    load.start()
    try:
        wait_until(lambda: stored.count() >= 40, 20, "the load did not start")
        # The replica stops receiving the primary's writes (as a slow or cut link does), and more
        # requests are admitted and settled on the primary alone.
        os.kill(sentinels.replica.process.pid, signal.SIGSTOP)
        try:
            primary = redis.Redis(port=sentinels.primary.port)
            primary.execute_command("CLIENT", "KILL", "TYPE", "replica")
            primary.close()
            cut_at = stored.count()
            wait_until(lambda: stored.count() >= cut_at + 20, 20, "no request was served after the cut")
            sentinels.primary.kill()
        finally:
            os.kill(sentinels.replica.process.pid, signal.SIGCONT)
        killed_at = stored.count()
        sentinels.kill_primary()  # waits until the replica is promoted
    finally:
        load.join()

    answered = Counter((status, code) for status, code, _ in results)
    assert set(answered) <= {(200, ""), (503, "service_unavailable"), (429, "token_quota_exceeded")}, answered
    served = answered[(200, "")]
    wait_until(lambda: stored.count() == served, 20, "the usage events were not all written")
    assert served > killed_at + 40, "too few requests were served after the failover"
    assert answered[(429, "token_quota_exceeded")] > 0, "the hard token quota was not reached"
    tokens = stored.aggregate(tokens=Sum("total_tokens"))["tokens"]
    assert served * TOKENS_PER_REQUEST == tokens <= limit_tokens  # overshoot: none

    with contextlib.suppress(RuntimeError):  # settles run after each answer: the assertion below tells
        wait_until(
            lambda: all(c == d for c, d in _counters_and_database(sentinels.url, key, gateway).values()),
            5,
            "counters differ",
        )
    counters = _counters_and_database(sentinels.url, key, gateway)
    assert {label: counter - database for label, (counter, database) in counters.items()} == {
        label: 0 for label in counters
    }, counters
    assert reconcile_counters(timezone.now()) == 0  # nothing was lost that the job would raise


def test_celery_reaches_the_primary_through_the_sentinels_in_kombus_form(sentinels):
    from kombu import Connection

    url, options = celery_broker(sentinels.url)
    primary = redis.Redis(port=sentinels.primary.port)
    with Connection(url, transport_options=options) as connection:
        queue = connection.SimpleQueue("aigw-sentinel-test")
        queue.put({"job": "close_periods"})
        assert primary.llen("aigw-sentinel-test") == 1  # queued on the primary the Sentinels name
        message = queue.get(timeout=5)
        message.ack()
        assert message.payload == {"job": "close_periods"}
        queue.close()
    assert primary.llen("aigw-sentinel-test") == 0
    primary.close()
