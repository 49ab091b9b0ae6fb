"""The invalid-key throttle's window (dataplane.throttle), in process: it ends when stated
(time-machine, no sleep), and with REDIS_URL the count is shared by every gateway process."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.utils import timezone

from dataplane.errors import ProxyError
from dataplane.throttle import InvalidKeyThrottle

ADDRESS = "203.0.113.40"
SCOPE = {"type": "http", "client": (ADDRESS, 5000), "headers": []}


def throttle(prefix: str, redis_url: str = "") -> InvalidKeyThrottle:
    return InvalidKeyThrottle(limit=3, window_seconds=60, redis_url=redis_url, redis_prefix=prefix)


async def attempts(throttle: InvalidKeyThrottle, count: int) -> list[int]:
    """Statuses of `count` invalid attempts as the data plane answers them (401 or 429)."""
    statuses = []
    for _ in range(count):
        try:
            throttle.check(SCOPE, "")
            await throttle.count_invalid(SCOPE)
            statuses.append(401)
        except ProxyError as error:
            statuses.append(error.status)
    return statuses


def test_in_process_the_address_is_refused_until_the_window_ends():
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        local = throttle("unused")
        assert asyncio.run(attempts(local, 5)) == [401, 401, 401, 429, 429]
        with pytest.raises(ProxyError) as refused:
            local.check(SCOPE, "")
            asyncio.run(local.count_invalid(SCOPE))
        assert refused.value.headers["retry-after"] == "60"

        traveller.shift(timedelta(seconds=59))
        assert asyncio.run(attempts(local, 1)) == [429]
        traveller.shift(timedelta(seconds=2))
        assert asyncio.run(attempts(local, 3)) == [401, 401, 401]


def test_a_secret_seen_valid_passes_the_check_of_a_refused_address():
    local = throttle("unused")
    asyncio.run(attempts(local, 5))
    local.remember_valid("hashed-valid")
    local.check(SCOPE, "hashed-valid")  # does not raise


def test_the_count_is_shared_by_processes_through_redis_when_it_is_configured():
    """Two throttles play two gateway processes: with REDIS_URL they share one count (one INCR
    per attempt, expiring with the window); without it each process counts alone."""
    prefix = f"aigwtest:{uuid.uuid4().hex[:8]}"

    async def run() -> tuple[list[int], list[int], int | None]:
        first, second = throttle(prefix, settings.REDIS_URL), throttle(prefix, settings.REDIS_URL)
        try:
            one = await attempts(first, 2)
            two = await attempts(second, 2)
            ttl = None
            if settings.REDIS_URL:
                import redis.asyncio as redis

                client = redis.from_url(settings.REDIS_URL)
                ttl = await client.ttl(f"{prefix}:invalid-key:{ADDRESS}")
                await client.delete(f"{prefix}:invalid-key:{ADDRESS}")
                await client.aclose()
            return one, two, ttl
        finally:
            await first.close()
            await second.close()

    one, two, ttl = asyncio.run(run())
    assert one == [401, 401]
    if settings.REDIS_URL:
        assert two == [401, 429]
        assert ttl is not None and 0 < ttl <= 60
    else:
        assert two == [401, 401]
