"""A warm key's config versions are read in the same Redis pipeline as its limit check
(`RedisCounters.check_and_reserve(versions=…)`), on a redis-server of the test's own: after
Redis forgot its scripts, the check still reserves exactly once."""

from __future__ import annotations

import asyncio

import pytest
import redis

from quotas.counters import _CHECK_AND_RESERVE, CounterCheck, RedisCounters
from tests.support.redis_process import RedisProcess

RPM = CounterCheck(name="t:{g1}:rpm:api_key:1:m", limit=100, amount=1, strict=True, seedable=False, ttl_seconds=120)
VERSIONS = ["t:{g1}:cfg:group", "t:cfg:catalog"]


@pytest.fixture
def redis_server(tmp_path):
    server = RedisProcess(tmp_path)
    yield server
    server.stop()


def _admit(url: str, forget) -> tuple[int, tuple]:
    async def main():
        counters = RedisCounters(url)
        try:
            await counters.check_and_reserve([RPM], VERSIONS)  # warm: both scripts known
            forget()
            result = await counters.check_and_reserve([RPM], VERSIONS)
            return result.values[0], result.versions
        finally:
            await counters.close()

    return asyncio.run(main())


@pytest.mark.parametrize("reloaded", ["neither script", "only the limit check"])
def test_an_admission_after_redis_forgot_its_scripts_reserves_once_and_reads_the_versions(redis_server, reloaded):
    client = redis.Redis.from_url(redis_server.url)

    def forget() -> None:
        client.script_flush()
        if reloaded == "only the limit check":  # its pipeline runs the check though the versions fail
            client.script_load(_CHECK_AND_RESERVE)

    value, versions = _admit(redis_server.url, forget)
    assert value == 2  # two requests, each counted once
    stored = [client.get(name) for name in VERSIONS]
    assert versions is not None and [value for value, _ in versions] == stored and None not in stored
    client.close()
