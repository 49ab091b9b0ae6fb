"""Counters that Redis loses (a flush or a restart) are rebuilt exactly (SPEC §3): a reservation
is subtracted only from the counter epoch that took it, a rebuilt counter takes the reservations
still in flight, and a usage event that the rebuild's seed did not read is counted once it is
stored. Each step happens in a chosen order, on a real `redis-server` of the test's own, with two
limit engines standing for two gateway processes."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import redis
from asgiref.sync import sync_to_async
from django.db import connections, transaction

from gateway.pricing import Prices, TokenUsage
from gateway.setup import gateway_create
from quotas.counters import RedisCounters, counter_name, usd_to_units, window_tag
from quotas.engine import Estimate, LimitEngine, LimitExceeded, LimitRule
from quotas.models import RefreshPeriod
from quotas.selectors import used_for_seed
from tests.factories import ResourceGroupFactory, UsageEventFactory
from tests.support.redis_process import RedisProcess
from usage.rollups import insert_events, next_write_generation

PRICES = Prices(input=Decimal(2), output=Decimal(8))  # USD per million tokens
ESTIMATE = Estimate.of(10, 400, 100, PRICES)  # reserves 500 tokens' worst cost
USAGE = TokenUsage(input_tokens=10, output_tokens=5)
COST = PRICES.cost(USAGE)
RESERVED = ESTIMATE.worst_cost_units
ACTUAL = usd_to_units(COST)

pytestmark = pytest.mark.django_db(transaction=True)


class _Key:
    """What `LimitEngine.admit` reads of a key."""

    def __init__(self, key_id: int) -> None:
        self.key_id = key_id
        self.status = "active"
        self.suspended_reason = ""


@pytest.fixture
def redis_server(tmp_path):
    server = RedisProcess(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def api_key():
    _, key, _ = gateway_create(resource_group=ResourceGroupFactory(), name="epochs")
    return key


def _rule(api_key, limit_units: int) -> LimitRule:
    group_id = api_key.gateway.resource_group_id
    return LimitRule("spend", "api_key", api_key.pk, limit_units, RefreshPeriod.MONTHLY, hard=True, group_id=group_id)


def _name(api_key) -> str:
    window = window_tag(RefreshPeriod.MONTHLY, datetime.now(UTC))
    return counter_name("spend", "api_key", api_key.pk, window, group_id=api_key.gateway.resource_group_id)


def _run(redis_server, steps):
    """Run `steps(first, second, flush, counter)` with two engines on the test's Redis."""

    async def main():
        engines = [LimitEngine(RedisCounters(redis_server.url)) for _ in range(2)]
        client = redis.asyncio.Redis(port=redis_server.port)

        async def counter(name: str) -> int | None:
            raw = await client.get(name)
            return None if raw is None else int(raw)

        try:
            return await steps(engines[0], engines[1], client.flushall, counter)
        finally:
            await client.aclose()
            for engine in engines:
                await engine.counters.close()
            await sync_to_async(connections.close_all, thread_sensitive=True)()

    try:
        return asyncio.run(main())
    finally:
        connections.close_all()


def _store(api_key) -> int:
    """Store one usage event of the settled request; returns its usage-write generation."""
    return insert_events([UsageEventFactory.build(api_key=api_key, total_tokens=15, cost_usd=COST)])


async def _stored(api_key) -> int:
    return await sync_to_async(_store, thread_sensitive=True)(api_key)


def test_a_request_settled_after_its_counter_was_rebuilt_adds_its_cost_and_subtracts_no_reservation(
    redis_server, api_key
):
    rules = (_rule(api_key, 10**12),)

    async def steps(first, second, flush, counter):
        in_flight = await first.admit(_Key(api_key.pk), rules, datetime.now(UTC), ESTIMATE)
        await flush()  # Redis loses the counter and the reservation in it
        other = await second.admit(_Key(api_key.pk), rules, datetime.now(UTC), ESTIMATE)  # rebuilt from the DB
        written = await first.settle(in_flight, USAGE, COST)
        after_settle = await counter(_name(api_key))
        await first.after_write([(written, await _stored(api_key))])
        await second.after_write([(await second.settle(other, USAGE, COST), await _stored(api_key))])
        return after_settle, await counter(_name(api_key))

    after_settle, final = _run(redis_server, steps)
    assert RESERVED > 10 * ACTUAL  # a wrongly subtracted reservation would show
    assert after_settle == RESERVED + ACTUAL  # the other request's reservation, and this cost
    assert final == 2 * ACTUAL  # = the two usage events in the database


def test_a_rebuilt_counter_holds_the_reservations_still_in_flight_so_a_hard_budget_holds(redis_server, api_key):
    rules = (_rule(api_key, 2 * RESERVED),)  # room for exactly two requests' worst case

    async def steps(first, second, flush, counter):
        in_flight = await first.admit(_Key(api_key.pk), rules, datetime.now(UTC), ESTIMATE)
        await flush()
        again = await first.admit(_Key(api_key.pk), rules, datetime.now(UTC), ESTIMATE)  # rebuilt, adopts
        held = await counter(_name(api_key))
        with pytest.raises(LimitExceeded) as refused:
            await second.admit(_Key(api_key.pk), rules, datetime.now(UTC), ESTIMATE)
        for admission in (in_flight, again):
            await first.after_write([(await first.settle(admission, USAGE, COST), await _stored(api_key))])
        return held, refused.value.code, await counter(_name(api_key))

    held, code, final = _run(redis_server, steps)
    assert held == 2 * RESERVED  # the first request's reservation is in the rebuilt counter
    assert code == "budget_exceeded"  # a third worst case would have passed the budget
    assert final == 2 * ACTUAL


def test_an_event_settled_before_the_rebuild_and_stored_after_its_seed_is_counted_once(redis_server, api_key):
    rules = (_rule(api_key, 10**12),)

    async def steps(first, second, flush, counter):
        # Settled into the old counter, then Redis loses it before the event is stored: the
        # rebuild's seed cannot read the event, so it is added once it is stored.
        late = await first.admit(_Key(api_key.pk), rules, datetime.now(UTC), ESTIMATE)
        late_written = await first.settle(late, USAGE, COST)
        # Settled and stored before Redis loses the counter: the seed reads it.
        early = await first.admit(_Key(api_key.pk), rules, datetime.now(UTC), ESTIMATE)
        early_written = await first.settle(early, USAGE, COST)
        early_generation = await _stored(api_key)
        await flush()
        other = await second.admit(_Key(api_key.pk), rules, datetime.now(UTC), ESTIMATE)
        seeded = await counter(_name(api_key))
        await first.after_write([(early_written, early_generation)])
        await first.after_write([(late_written, await _stored(api_key))])
        after_stored = await counter(_name(api_key))
        await second.after_write([(await second.settle(other, USAGE, COST), await _stored(api_key))])
        return seeded, after_stored, await counter(_name(api_key))

    seeded, after_stored, final = _run(redis_server, steps)
    assert seeded == ACTUAL + RESERVED  # the stored event, and the new request's reservation
    assert after_stored == 2 * ACTUAL + RESERVED  # the late event counted once, the early one not twice
    assert final == 3 * ACTUAL  # = the three usage events in the database


def test_a_seed_waits_for_usage_being_stored_and_reads_it(api_key):
    """The usage-write generation orders a seed after a write that is committing: the seed waits
    and reads the event, and its generation is above the write's (so no one adds it again)."""
    inserted, release = threading.Event(), threading.Event()
    write: dict[str, int] = {}
    seed: dict[str, object] = {}
    since = datetime(2000, 1, 1, tzinfo=UTC)

    def store() -> None:
        try:
            with transaction.atomic():
                write["generation"] = _store(api_key)
                inserted.set()
                release.wait(10)
        finally:
            connections.close_all()

    def read() -> None:
        try:
            seed["used"], seed["generation"] = used_for_seed(level="api_key", entity_id=api_key.pk, since=since)
        finally:
            connections.close_all()

    with transaction.atomic():
        next_write_generation()  # the gate row exists, as it does after the migrations
    writer = threading.Thread(target=store)
    writer.start()
    assert inserted.wait(10)
    reader = threading.Thread(target=read)
    reader.start()
    reader.join(0.5)
    waited = reader.is_alive()
    release.set()
    writer.join(10)
    reader.join(10)
    assert waited  # the seed waited for the write to commit
    assert seed["used"].usd == COST  # type: ignore[attr-defined]
    assert seed["generation"] > write["generation"]  # type: ignore[operator]
