"""Refusal floods counted per UTC minute (`usage.refusals.RefusalLog`), under a controlled clock:
the first N refusals of one key (or client address) and error code in a minute are one usage event
each, the rest one aggregate counting them, queued when the minute is over; memory stays bounded
however many addresses flood; and an aggregate row counts as its `requests` everywhere requests
are counted (rollups, the aggregates API, CSV)."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine

from gateway.setup import gateway_create
from tests.factories import UsageEventFactory
from tests.support.people import api_client_as, member_of
from usage.models import UsageEvent
from usage.refusals import RefusalLog
from usage.rollups import rollup_dirty_hours, usage_series

MINUTE = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def _refusal(
    at: datetime, n: int, *, key: int | None = 7, address: str = "192.0.2.1", code: str = "rate_limit_exceeded"
):
    return {
        "request_id": f"req_{at:%H%M%S}_{n}_{key}_{address}_{code}",
        "created_at": at,
        "resource_group_id": 3 if key else None,
        "gateway_id": 5 if key else None,
        "api_key_id": key,
        "api_key_name": "bot" if key else "",
        "model_requested": "mock/echo",
        "status_code": 429 if code == "rate_limit_exceeded" else 401,
        "error_code": code,
        "cost_usd": Decimal(0),
        "client_address": address,
    }


def test_past_the_first_n_a_minutes_refusals_are_one_aggregate_queued_when_the_next_minute_begins():
    queued: list[dict] = []
    log = RefusalLog(queued.append, per_minute=5)
    with time_machine.travel(MINUTE, tick=False):
        for n in range(12):
            log.refuse(_refusal(MINUTE + timedelta(seconds=n), n))
        log.refuse(_refusal(MINUTE + timedelta(seconds=59.999), 12, key=None, code="invalid_api_key"))
    assert [row.get("requests", 1) for row in queued] == [1] * 6  # 5 of the key, 1 address
    assert log.aggregated == 7

    later = MINUTE + timedelta(minutes=1)  # the first refusal of 12:01 queues 12:00's aggregate
    log.refuse(_refusal(later, 0))
    aggregate, single = queued[6], queued[7]
    assert aggregate["requests"] == 7 and aggregate["request_id"].startswith("agg_")
    assert (aggregate["api_key_id"], aggregate["gateway_id"], aggregate["created_at"]) == (
        7,
        5,
        MINUTE + timedelta(seconds=5),
    )
    assert aggregate["latency_ms"] == 0 and aggregate["model_requested"] == "mock/echo"
    assert "requests" not in single and single["created_at"] == later  # a new minute starts with single events
    assert len(queued) == 8 and log.aggregated == 0
    assert sum(row.get("requests", 1) for row in queued) == 14


def test_an_aggregate_is_queued_at_the_end_of_its_minute_even_when_no_refusal_follows():
    queued: list[dict] = []

    async def flood_then_wait() -> None:
        log = RefusalLog(queued.append, per_minute=1)
        for n in range(4):
            log.refuse(_refusal(datetime.now(UTC), n))
        assert len(queued) == 1
        await asyncio.sleep(0.3)  # the clock below crosses 12:01:00 meanwhile
        log.close()

    with time_machine.travel(MINUTE + timedelta(seconds=59.9), tick=True):
        asyncio.run(flood_then_wait())
    assert [row.get("requests", 1) for row in queued] == [1, 3]


def test_memory_stays_bounded_when_many_addresses_flood_and_the_count_stays_exact():
    queued: list[dict] = []
    log = RefusalLog(queued.append, per_minute=2, max_subjects=50)
    with time_machine.travel(MINUTE, tick=False):
        for address in range(1000):
            for n in range(3):
                log.refuse(
                    _refusal(
                        MINUTE, n, key=None, address=f"10.0.{address // 250}.{address % 250}", code="invalid_api_key"
                    )
                )
        assert len(log._counts) <= 51 and len(log._aggregates) <= 51
        log.flush()
    assert sum(row.get("requests", 1) for row in queued) == 3000
    unattributed = [row for row in queued if row.get("requests", 1) > 1 and row["client_address"] == ""]
    assert len(unattributed) == 1 and unattributed[0]["api_key_id"] is None
    # 50 addresses: 2 single events and an aggregate each; every further address, counted
    # together: 2 single events, then one aggregate without an address.
    assert len(queued) == 50 * 2 + 50 + 2 + 1


@pytest.mark.django_db
def test_an_aggregate_row_counts_as_its_requests_in_rollups_the_aggregates_api_and_csv(group):
    owner = member_of(group, "owner")
    _, api_key, _ = gateway_create(resource_group=group, name="flooded")
    UsageEventFactory(api_key=api_key, status_code=200, created_at=MINUTE)
    UsageEventFactory(
        api_key=api_key,
        status_code=429,
        error_code="rate_limit_exceeded",
        requests=250,
        total_tokens=0,
        input_tokens=0,
        output_tokens=0,
        cost_usd=Decimal(0),
        created_at=MINUTE + timedelta(seconds=30),
    )
    window = {"since": MINUTE - timedelta(hours=1), "until": MINUTE + timedelta(hours=1), "user": owner}

    def counted() -> tuple[int, int]:
        (point,) = usage_series(bucket="range", filters={"resource_group": group.pk}, **window)
        return point.requests, point.errors

    assert counted() == (251, 250)  # from the raw events
    rollup_dirty_hours()
    assert counted() == (251, 250)  # from the rollups

    client = api_client_as(owner)
    since = (MINUTE - timedelta(hours=1)).isoformat()
    rows = client.get("/api/v1/usage/aggregates", {"bucket": "day", "since": since}).json()["results"]
    assert [(row["requests"], row["errors"]) for row in rows] == [(251, 250)]
    exported = b"".join(client.get("/api/v1/usage-events", {"format": "csv", "since": since}).streaming_content)
    table = list(csv.DictReader(io.StringIO(exported.decode())))
    assert sorted(int(row["requests"]) for row in table) == [1, 250]
    assert UsageEvent.objects.count() == 2
