"""Counters shared by every gateway process: Redis in production, process memory on the
embedded default (which serves from one process).

Counter names carry their window (e.g. `aigw:spend:api_key:12:2026-11-01`), so a new window is
a new counter and nothing has to be reset. A token-quota or spend counter that does not exist
yet is seeded from the usage events in the database before it is used, so a Redis restart
loses nothing that was written; TPM/RPM counters start at zero each minute.

Check-and-reserve is one atomic step for every limit of a request: one Lua script in Redis,
one synchronous function (no await inside) in process memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

import redis.asyncio as redis
from django.conf import settings
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from quotas.periods import window_start

# Spend is counted in integer units of 1e-10 USD (UsageEvent.cost_usd has 10 decimal places).
# Redis's Lua numbers are doubles, exact to 2**53 units, i.e. budgets up to about $900,000.
USD_UNITS = 10**10


def usd_to_units(amount) -> int:
    """USD (Decimal) to integer counter units, exactly."""
    return int(Decimal(amount) * USD_UNITS)


def units_to_usd(units: int) -> Decimal:
    """Integer counter units back to USD (Decimal with 10 places)."""
    return (Decimal(units) / USD_UNITS).quantize(Decimal("0.0000000001"))


def counter_name(kind: str, level: str, entity_id: int, window_tag: str) -> str:
    """E.g. `aigw:tokens:api_key:12:2026-11-22`. `kind` is `tokens` (token quota), `spend`
    (spend budget, in USD_UNITS), `tpm` or `rpm`; `window_tag` from `window_tag()`/`minute_tag()`."""
    return f"{settings.AIGW_REDIS_PREFIX}:{kind}:{level}:{entity_id}:{window_tag}"


def window_tag(refresh_period: str, now: datetime) -> str:
    """The window part of a counter name: `life` for `none`, else the window's first day."""
    if refresh_period == "none":
        return "life"
    return window_start(refresh_period, now).date().isoformat()


def minute_tag(now: datetime) -> str:
    """The window part of a TPM/RPM counter name: the UTC minute since the epoch, e.g. `m29369345`."""
    return f"m{int(now.timestamp()) // 60}"


@dataclass(frozen=True, slots=True)
class CounterCheck:
    """One limit's part in a check-and-reserve.

    `strict`: reject when value + amount > limit (hard limits, TPM, RPM); otherwise reject only
    when value >= limit (soft caps: the request that crosses the limit completes).
    `seedable`: a missing counter must be seeded from the database first (token quotas and
    budgets); otherwise it counts as 0 (TPM/RPM). `ttl_seconds`: expiry of a new counter.
    """

    name: str
    limit: int
    amount: int
    strict: bool
    seedable: bool
    ttl_seconds: int | None


@dataclass(frozen=True, slots=True)
class Reservation:
    """The answer of `check_and_reserve`.

    `ok`: every check passed and every amount was added; `values` are the counters after it.
    Otherwise `failed` is the index of the first check that rejected (with its `value`), or of
    a counter that must be seeded first (`missing` True).
    """

    ok: bool
    values: tuple[int, ...] = ()
    failed: int = -1
    value: int = 0
    missing: bool = False


class Counters(Protocol):
    async def check_and_reserve(self, checks: list[CounterCheck]) -> Reservation: ...

    async def seed(self, name: str, value: int, ttl_seconds: int | None) -> int: ...

    async def adjust(self, deltas: list[tuple[str, int]]) -> list[int | None]: ...

    async def read(self, names: list[str]) -> list[int | None]: ...


class LocalCounters:
    """Counters in this process's memory (embedded default, one process). Expiry is not needed:
    old windows are simply never read again; `prune` drops them."""

    def __init__(self) -> None:
        self._values: dict[str, int] = {}

    async def check_and_reserve(self, checks: list[CounterCheck]) -> Reservation:
        values = []
        for index, check in enumerate(checks):
            value = self._values.get(check.name)
            if value is None:
                if check.seedable:
                    return Reservation(ok=False, failed=index, missing=True)
                value = 0
            if (value + check.amount > check.limit) if check.strict else (value >= check.limit):
                return Reservation(ok=False, failed=index, value=value)
            values.append(value)
        after = []
        for check, value in zip(checks, values, strict=True):
            if check.amount or check.name in self._values:
                self._values[check.name] = value + check.amount
            after.append(value + check.amount)
        return Reservation(ok=True, values=tuple(after))

    async def seed(self, name: str, value: int, ttl_seconds: int | None) -> int:
        return self._values.setdefault(name, value)

    async def adjust(self, deltas: list[tuple[str, int]]) -> list[int | None]:
        out: list[int | None] = []
        for name, delta in deltas:
            if name in self._values:
                self._values[name] += delta
                out.append(self._values[name])
            else:
                out.append(None)
        return out

    async def read(self, names: list[str]) -> list[int | None]:
        return [self._values.get(name) for name in names]


_CHECK_AND_RESERVE = """
-- ARGV: per key 5 values: limit, amount, strict (1/0), seedable (1/0), ttl seconds (0 = none)
local values = {}
for i = 1, #KEYS do
  local base = (i - 1) * 5
  local limit = tonumber(ARGV[base + 1])
  local amount = tonumber(ARGV[base + 2])
  local raw = redis.call('GET', KEYS[i])
  local value
  if raw then
    value = tonumber(raw)
  elseif ARGV[base + 4] == '1' then
    return {-1, i, 0}
  else
    value = 0
  end
  if ARGV[base + 3] == '1' then
    if value + amount > limit then return {0, i, value} end
  elseif value >= limit then
    return {0, i, value}
  end
  values[i] = value
end
local out = {1, 0, 0}
for i = 1, #KEYS do
  local base = (i - 1) * 5
  local amount = tonumber(ARGV[base + 2])
  local ttl = tonumber(ARGV[base + 5])
  local value = values[i]
  if amount ~= 0 then
    value = redis.call('INCRBY', KEYS[i], amount)
    if ttl > 0 and value == amount then redis.call('EXPIRE', KEYS[i], ttl) end
  end
  out[#out + 1] = value
end
return out
"""

_ADJUST = """
local out = {}
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    out[i] = redis.call('INCRBY', KEYS[i], ARGV[i])
  else
    out[i] = false
  end
end
return out
"""


def redis_client(url: str):
    """An asyncio Redis client for the data plane: a command that meets a dead connection (Redis
    restarted, a pooled connection gone stale) is retried twice on a fresh one, 10 then 20 ms
    later, so the first request after Redis is back is served; connecting and each answer wait at
    most 1 s. A retried command runs twice only if a link broke after Redis ran it and Redis
    stayed up (after a crash the first run died with Redis' memory)."""
    return redis.from_url(
        url,
        retry=Retry(ExponentialBackoff(cap=0.1, base=0.01), retries=2),
        socket_connect_timeout=1.0,
        socket_timeout=1.0,
    )


class RedisCounters:
    """Counters in Redis, shared by every process that uses the same `REDIS_URL`."""

    def __init__(self, url: str) -> None:
        self._redis = redis_client(url)
        self._check_and_reserve = self._redis.register_script(_CHECK_AND_RESERVE)
        self._adjust = self._redis.register_script(_ADJUST)

    async def check_and_reserve(self, checks: list[CounterCheck]) -> Reservation:
        args: list[int] = []
        for check in checks:
            args += [check.limit, check.amount, int(check.strict), int(check.seedable), check.ttl_seconds or 0]
        status, index, value, *values = await self._check_and_reserve(keys=[c.name for c in checks], args=args)
        if status == 1:
            return Reservation(ok=True, values=tuple(int(v) for v in values))
        return Reservation(ok=False, failed=int(index) - 1, value=int(value), missing=status == -1)

    async def seed(self, name: str, value: int, ttl_seconds: int | None) -> int:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(name, value, nx=True, ex=ttl_seconds)
            pipe.get(name)
            _, current = await pipe.execute()
        return int(current)

    async def adjust(self, deltas: list[tuple[str, int]]) -> list[int | None]:
        if not deltas:
            return []
        values = await self._adjust(keys=[n for n, _ in deltas], args=[d for _, d in deltas])
        return [None if v is None else int(v) for v in values]

    async def read(self, names: list[str]) -> list[int | None]:
        values = await self._redis.mget(names)
        return [None if value is None else int(value) for value in values]

    async def close(self) -> None:
        await self._redis.aclose()


def make_counters() -> LocalCounters | RedisCounters:
    """Redis counters when `REDIS_URL` is set, else in-process ones."""
    if settings.REDIS_URL:
        return RedisCounters(settings.REDIS_URL)
    return LocalCounters()
