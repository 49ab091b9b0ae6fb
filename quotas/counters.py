"""Counters shared by every gateway process: Redis in production, process memory on the
embedded default (which serves from one process).

Counter names carry their window (e.g. `aigw:tokens:gateway:7:2026-11-22`), so a new window is
a new counter and nothing has to be reset. A counter that does not exist yet is seeded from the
usage events in PostgreSQL before it is used, so a Redis restart loses nothing that was written.
"""

from __future__ import annotations

from typing import Protocol

from django.conf import settings

# Adds to a counter only if it exists (a missing one is seeded from the database on next read).
_ADD_IF_EXISTS = """
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then redis.call('INCRBY', key, ARGV[1]) end
end
return 1
"""


class Counters(Protocol):
    async def read(self, names: list[str]) -> list[int | None]:
        """Current values, None for counters that do not exist."""

    async def seed(self, name: str, value: int, ttl_seconds: int | None) -> int:
        """Create `name` with `value` unless it exists; returns its value after."""

    async def add(self, names: list[str], amount: int) -> None:
        """Add `amount` to each existing counter."""


class LocalCounters:
    """Counters in this process's memory (embedded default, one process)."""

    def __init__(self) -> None:
        self._values: dict[str, int] = {}

    async def read(self, names: list[str]) -> list[int | None]:
        return [self._values.get(name) for name in names]

    async def seed(self, name: str, value: int, ttl_seconds: int | None) -> int:
        return self._values.setdefault(name, value)

    async def add(self, names: list[str], amount: int) -> None:
        for name in names:
            if name in self._values:
                self._values[name] += amount


class RedisCounters:
    """Counters in Redis, shared by every process that uses the same `REDIS_URL`."""

    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        self._redis = redis.from_url(url)
        self._add_script = self._redis.register_script(_ADD_IF_EXISTS)

    async def read(self, names: list[str]) -> list[int | None]:
        values = await self._redis.mget(names)
        return [None if value is None else int(value) for value in values]

    async def seed(self, name: str, value: int, ttl_seconds: int | None) -> int:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(name, value, nx=True, ex=ttl_seconds)
            pipe.get(name)
            _, current = await pipe.execute()
        return int(current)

    async def add(self, names: list[str], amount: int) -> None:
        if names and amount:
            await self._add_script(keys=names, args=[amount])

    async def close(self) -> None:
        await self._redis.aclose()


def make_counters() -> LocalCounters | RedisCounters:
    """Redis counters when `REDIS_URL` is set, else in-process ones."""
    if settings.REDIS_URL:
        return RedisCounters(settings.REDIS_URL)
    return LocalCounters()


# Spend is counted in integer units of 1e-10 USD (UsageEvent.cost_usd has 10 decimal places).
USD_UNITS = 10**10


def usd_to_units(amount) -> int:
    """USD (Decimal) to integer counter units, exactly."""
    from decimal import Decimal

    return int(Decimal(amount) * USD_UNITS)


def units_to_usd(units: int):
    """Integer counter units back to USD (Decimal with 10 places)."""
    from decimal import Decimal

    return (Decimal(units) / USD_UNITS).quantize(Decimal("0.0000000001"))


def counter_name(kind: str, level: str, entity_id: int, window_tag: str) -> str:
    """E.g. `aigw:tokens:api_key:12:2026-11-22`. `kind` is `tokens` (token quota), `spend`
    (spend budget, in USD_UNITS), `tpm` or `rpm`; `window_tag` from `window_tag()`."""
    return f"{settings.AIGW_REDIS_PREFIX}:{kind}:{level}:{entity_id}:{window_tag}"


def window_tag(refresh_period: str, now) -> str:
    """The window part of a counter name: `life` for `none`, else the window's first day."""
    from quotas.periods import window_start

    if refresh_period == "none":
        return "life"
    return window_start(refresh_period, now).date().isoformat()


def minute_tag(now) -> str:
    """The window part of a TPM/RPM counter name: the UTC minute, e.g. `m29369345`."""
    return f"m{int(now.timestamp()) // 60}"
