"""Counters shared by every gateway process: Redis in production, process memory on the
embedded default (which serves from one process).

Counter names carry their resource group's hash tag and their window (e.g.
`aigw:{g3}:spend:api_key:12:2026-11-01`), so a new window is a new counter and nothing has to be
reset, and every counter of one request is in one Redis Cluster slot. A token-quota or spend
counter that does not exist yet is seeded from the usage events in the database before it is
used, so a Redis restart loses nothing that was written; TPM/RPM counters start at zero each
minute. (Renaming counters, as the hash tags did, loses nothing either: the new names are seeded.)

Check-and-reserve is one atomic step for every limit of a request: one Lua script in Redis,
one synchronous function (no await inside) in process memory.

Epochs (SPEC §3: "a reservation is never subtracted from a counter that no longer holds it").
Each Redis counter `C` has a sibling `C:e` holding `<epoch>:<generation>:<server>`: a random
epoch given when the counter is created (seeded from the database, or first counted for
TPM/RPM), for a seeded counter the usage-write generation its seed read the database at
(`usage.rollups.next_write_generation`), and the replication id of the Redis primary that
created it. A counter lost with Redis (restart, flush) comes back with a new epoch, and so does
one found under another replication id than the one it was created under (a replica promoted by
a failover may lack the last writes; see `_SERVER`), so an admission can tell whether the
counter still holds its reservation: `settle` subtracts a reservation only from the epoch that
took it, and `after_write` adds an event that the rebuilt counter's seed did not read. Counters
in process memory are never lost; their epoch is always `local`.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from django.conf import settings
from redis.exceptions import NoScriptError

from core.redis import async_client, hash_tag, is_cluster
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


def counter_name(kind: str, level: str, entity_id: int, window_tag: str, *, group_id: int) -> str:
    """E.g. `aigw:{g3}:tokens:api_key:12:2026-11-22`. `kind` is `tokens` (token quota), `spend`
    (spend budget, in USD_UNITS), `tpm` or `rpm`; `window_tag` from `window_tag()`/`minute_tag()`;
    `group_id`: the resource group of the key, gateway or group that owns the limit. Its hash tag
    `{g<group_id>}` puts every counter of one request (its key's, its gateway's, its group's) in
    one Redis Cluster slot, so one script can check and reserve them all."""
    return f"{settings.AIGW_REDIS_PREFIX}:{{g{group_id}}}:{kind}:{level}:{entity_id}:{window_tag}"


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

    `ok`: every check passed and every amount was added; `values` are the counters after it and
    `epochs` their epochs (`""` for a counter that does not exist: a TPM/RPM one that nothing was
    added to). Otherwise `failed` is the index of the first check that rejected (with its
    `value`), or of a counter that must be seeded first (`missing` True).
    """

    ok: bool
    values: tuple[int, ...] = ()
    failed: int = -1
    value: int = 0
    missing: bool = False
    epochs: tuple[str, ...] = ()
    versions: tuple[tuple[bytes, bytes], ...] | None = None  # read before it, if asked (`read_versions`)


@dataclass(frozen=True, slots=True)
class Settle:
    """One counter's part in settling a request: add `same` if the counter is still in `epoch`
    (the one that took the reservation: real usage minus the reservation), else `other` (the
    real usage alone: a rebuilt counter never held the reservation)."""

    name: str
    epoch: str
    same: int
    other: int


@dataclass(frozen=True, slots=True)
class Written:
    """A settled request's part in one counter, once its usage event is in the database.

    `settled_in`: the epoch its usage was added to (`""`: the settle did not reach Redis;
    `"!"`: never settled, an interrupted request);
    `epoch`: the epoch that took its reservation; `reserved`, `actual`: counter units;
    `generation`: the usage-write generation of the transaction that stored the event. See
    `RedisCounters.after_write` for what is added."""

    name: str
    settled_in: str
    epoch: str
    reserved: int
    actual: int
    generation: int


class Counters(Protocol):
    """What the limit engine needs of a counter store (`LocalCounters`, `RedisCounters`).
    `durable`: its counters are never lost (then seeds need no usage-write generation)."""

    durable: bool

    async def check_and_reserve(self, checks: list[CounterCheck], versions: list[str] | None = None) -> Reservation:
        """Check and reserve `checks` in one step; with `versions` (config-version names), read
        them just before, in the same round trip where the store allows it."""
        ...

    async def seed_counter(self, name: str, value: int, ttl_seconds: int | None, generation: int) -> str: ...

    async def settle(self, items: list[Settle]) -> list[tuple[int, str] | None]: ...

    async def adopt(self, name: str, epoch: str, amount: int) -> bool: ...

    async def after_write(self, items: list[Written]) -> int: ...

    async def read(self, names: list[str]) -> list[int | None]: ...


LOCAL_EPOCH = "local"


class LocalCounters:
    """Counters in this process's memory (embedded default, one process). They are never lost,
    so their epoch is always `LOCAL_EPOCH`. Expiry is not needed: old windows are simply never
    read again."""

    durable = True  # nothing to rebuild: seeds need no usage-write generation

    def __init__(self) -> None:
        self._values: dict[str, int] = {}

    async def check_and_reserve(self, checks: list[CounterCheck], versions: list[str] | None = None) -> Reservation:
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
        return Reservation(ok=True, values=tuple(after), epochs=(LOCAL_EPOCH,) * len(checks))

    async def seed_counter(self, name: str, value: int, ttl_seconds: int | None, generation: int) -> str:
        self._values.setdefault(name, value)
        return LOCAL_EPOCH

    async def settle(self, items: list[Settle]) -> list[tuple[int, str] | None]:
        out: list[tuple[int, str] | None] = []
        for item in items:
            if item.name in self._values:
                self._values[item.name] += item.same if item.epoch == LOCAL_EPOCH else item.other
                out.append((self._values[item.name], LOCAL_EPOCH))
            else:
                out.append(None)
        return out

    async def adopt(self, name: str, epoch: str, amount: int) -> bool:
        return False  # a counter in memory is never rebuilt, so there is nothing to adopt

    async def after_write(self, items: list[Written]) -> int:
        return 0

    async def read(self, names: list[str]) -> list[int | None]:
        return [self._values.get(name) for name in names]


# Every script gets, per counter, its name and its epoch key (`<name>:e`) in KEYS, so that
# both are declared (Redis Cluster: one hash slot through the name's `{g<group id>}` tag).
#
# The epoch key holds `<epoch>:<generation>:<server>`, `<server>` being the replication id
# (INFO replication, master_replid) of the Redis primary that wrote it. Redis gives a server a
# new replication id whenever it starts (also from its RDB or AOF file) and whenever a replica is
# promoted (Sentinel's failover, a Cluster's own, REPLICAOF NO ONE); a replica shares its
# primary's. Replication is asynchronous, so a promoted replica, or a server restarted from its
# files, may lack the last writes its predecessor acknowledged. Every script therefore treats a
# counter written under another replication id as missing, and a seed replaces it: a failover
# is a Redis that lost the counter. (INFO replication costs the script about 5 us; INFO server's
# run_id, which would tell restarts only, twice that.)
_SERVER = """
local function server_identity()
  return string.match(redis.call('INFO', 'replication'), 'master_replid:(%x+)')
end
-- an epoch key's value -> epoch, generation, server ('' each for none)
local function parse(meta)
  if not meta then return '', 0, '' end
  local epoch, generation, written_under = string.match(meta, '^([^:]*):(%d*):(%x*)$')
  if not epoch then return '', 0, '' end
  return epoch, tonumber(generation) or 0, written_under
end
local server = server_identity()
-- whether counter KEYS[k] exists and was written under this server; then its epoch key's parts
local function fresh(k)
  if redis.call('EXISTS', KEYS[k]) == 0 then return false, '', 0 end
  local epoch, generation, written_under = parse(redis.call('GET', KEYS[k + 1]))
  return written_under == server, epoch, generation
end
"""

_CHECK_AND_RESERVE = (
    _SERVER
    + """
-- KEYS: per counter its name and its epoch key. ARGV[1]: the epoch of a counter created here;
-- then per counter 5 values: limit, amount, strict (1/0), seedable (1/0), ttl seconds (0 = none)
local values, epochs = {}, {}
local n = #KEYS / 2
for i = 1, n do
  local base = 1 + (i - 1) * 5
  local limit = tonumber(ARGV[base + 1])
  local amount = tonumber(ARGV[base + 2])
  local raw = redis.call('GET', KEYS[2 * i - 1])
  local epoch = false
  if raw then
    local e, _, written_under = parse(redis.call('GET', KEYS[2 * i]))
    if written_under == server then
      epoch = e
    elseif ARGV[base + 4] == '1' then
      return {-1, i, 0}  -- written under another server: rebuilt from the database
    else
      redis.call('DEL', KEYS[2 * i - 1], KEYS[2 * i])  -- a TPM/RPM minute starts again
      raw = false
    end
  end
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
  epochs[i] = epoch
end
local out = {1, 0, 0}
for i = 1, n do
  local base = 1 + (i - 1) * 5
  local amount = tonumber(ARGV[base + 2])
  local ttl = tonumber(ARGV[base + 5])
  local value = values[i]
  local epoch = epochs[i]
  if amount ~= 0 then
    -- ARGV as it came (a Lua number would reach Redis as e.g. "1e+14")
    value = redis.call('INCRBY', KEYS[2 * i - 1], ARGV[base + 2])
    if not epoch then  -- created here
      epoch = ARGV[1]
      redis.call('SET', KEYS[2 * i], epoch .. ':0:' .. server)
      if ttl > 0 then
        redis.call('EXPIRE', KEYS[2 * i - 1], ttl)
        redis.call('EXPIRE', KEYS[2 * i], ttl)
      end
    end
  end
  out[#out + 1] = value
  out[#out + 1] = epoch or ''
end
return out
"""
)

_SEED = (
    _SERVER
    + """
-- KEYS: the counter and its epoch key. ARGV: value, ttl seconds (0 = none), epoch, generation.
-- A counter written under this server is left as it is; a missing one, or one written under
-- another server, is set. Returns the counter's epoch.
local ok, epoch = fresh(1)
if ok then return epoch end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[3] .. ':' .. ARGV[4] .. ':' .. server)
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[2], ttl)
end
return ARGV[3]
"""
)

_SETTLE = (
    _SERVER
    + """
-- KEYS: per counter its name and its epoch key. ARGV: per counter the epoch that took the
-- reservation, the delta if the counter is still in it, and the delta if it is not.
-- Returns per counter {value, epoch}, or {false, ''} for a counter that is missing (or written
-- under another server: it is rebuilt first).
local out = {}
for i = 1, #KEYS / 2 do
  local base = (i - 1) * 3
  local ok, epoch = fresh(2 * i - 1)
  if ok then
    local delta = ARGV[base + 2]
    if epoch ~= ARGV[base + 1] then delta = ARGV[base + 3] end
    out[#out + 1] = redis.call('INCRBY', KEYS[2 * i - 1], delta)
    out[#out + 1] = epoch
  else
    out[#out + 1] = false
    out[#out + 1] = ''
  end
end
return out
"""
)

_ADOPT = (
    _SERVER
    + """
-- KEYS: a counter and its epoch key; ARGV: the epoch expected, the amount to add.
local ok, epoch = fresh(1)
if ok and epoch == ARGV[1] then
  redis.call('INCRBY', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
)

_AFTER_WRITE = (
    _SERVER
    + """
-- KEYS: per item a counter and its epoch key. ARGV: per item settled_in, epoch, reserved,
-- actual, generation. Returns how many items were added to a counter. A counter that is
-- missing, or written under another server, is left alone: its seed reads the events.
local added = 0
for i = 1, #KEYS / 2 do
  local base = (i - 1) * 5
  local ok, epoch, generation = fresh(2 * i - 1)
  if ok then
    local settled_in = ARGV[base + 1]
    -- a settle whose answer never came, on the counter that took the reservation: Redis may
    -- have run it, so it is not run again (the counter stays at or above the truth)
    local unknown = settled_in == '' and epoch == ARGV[base + 2]
    if settled_in == '!' and epoch == ARGV[base + 2] then
      -- never settled (an interrupted request), on the counter that holds its reservation
      local delta = tonumber(ARGV[base + 4]) - tonumber(ARGV[base + 3])
      if delta ~= 0 then redis.call('INCRBY', KEYS[2 * i - 1], string.format('%.0f', delta)) end
      added = added + 1
    elseif epoch ~= settled_in and not unknown and generation <= tonumber(ARGV[base + 5]) then
      local actual = ARGV[base + 4]
      if actual ~= '0' then redis.call('INCRBY', KEYS[2 * i - 1], actual) end
      added = added + 1
    end
  end
end
return added
"""
)

_READ = (
    _SERVER
    + """
-- KEYS: per counter its name and its epoch key. Returns per counter its value, or false when it
-- is missing or was written under another server.
local out = {}
for i = 1, #KEYS / 2 do
  local ok = fresh(2 * i - 1)
  out[i] = ok and redis.call('GET', KEYS[2 * i - 1]) or false
end
return out
"""
)

_VERSIONS = (
    _SERVER
    + """
-- KEYS: config-version keys. ARGV: per key the value a missing one starts at.
-- Returns this server's replication id, then each key's value.
local out = {server}
for i = 1, #KEYS do
  local value = redis.call('GET', KEYS[i])
  if not value then
    redis.call('SET', KEYS[i], ARGV[i])
    value = ARGV[i]
  end
  out[#out + 1] = value
end
return out
"""
)


def epoch_key(name: str) -> str:
    """The key beside counter `name` that holds `<epoch>:<generation>:<server>`; it keeps the
    name's hash tag."""
    return f"{name}:e"


def slot_groups(names: list[str], cluster: bool) -> list[list[int]]:
    """The indexes of `names` in groups that one command may touch together: all of them on one
    server, per hash tag (a name without one alone) on a Redis Cluster."""
    if not cluster:
        return [list(range(len(names)))] if names else []
    groups: dict[str, list[int]] = {}
    for index, name in enumerate(names):
        groups.setdefault(hash_tag(name) or name, []).append(index)
    return list(groups.values())


class RedisCounters:
    """Counters in Redis (one server, a Cluster or a Sentinel-managed primary: `core.redis`),
    shared by every process that uses the same `REDIS_URL`. Each call is one script on the keys
    of one resource group, so one hash slot."""

    durable = False  # lost with Redis: a seed records the usage-write generation it read at

    def __init__(self, url: str) -> None:
        self._redis = async_client(url)
        self._cluster = is_cluster(self._redis)
        self._check_and_reserve = self._redis.register_script(_CHECK_AND_RESERVE)
        self._seed = self._redis.register_script(_SEED)
        self._settle = self._redis.register_script(_SETTLE)
        self._adopt = self._redis.register_script(_ADOPT)
        self._after_write = self._redis.register_script(_AFTER_WRITE)
        self._read = self._redis.register_script(_READ)
        self._versions = self._redis.register_script(_VERSIONS)
        self._epoch_prefix = secrets.token_hex(6)
        self._epochs = itertools.count()

    def _new_epoch(self) -> str:
        """An epoch no counter has had: this process's random prefix and a sequence number."""
        return f"{self._epoch_prefix}{next(self._epochs):x}"

    @staticmethod
    def _keys(names) -> list[str]:
        keys: list[str] = []
        for name in names:
            keys += [name, epoch_key(name)]
        return keys

    @property
    def one_server(self) -> bool:
        """Whether every key is on one server (not a Cluster): a command may touch any of them."""
        return not self._cluster

    async def check_and_reserve(self, checks: list[CounterCheck], versions: list[str] | None = None) -> Reservation:
        """See `Counters.check_and_reserve`. With `versions` on one server, the versions script
        and the reservation go in one pipeline (one round trip; Redis runs them in that order);
        on a Cluster the versions are read first (`read_versions`)."""
        args: list[int | str] = [self._new_epoch()]
        for check in checks:
            args += [check.limit, check.amount, int(check.strict), int(check.seedable), check.ttl_seconds or 0]
        keys = self._keys(c.name for c in checks)
        read: tuple[tuple[bytes, bytes], ...] | None = None
        if versions is None:
            raw = await self._check_and_reserve(keys=keys, args=args)
        elif self._cluster:
            read = tuple(await self.read_versions(versions))
            raw = await self._check_and_reserve(keys=keys, args=args)
        else:
            (server, *found), raw = await self._versions_then(self._check_and_reserve, versions, keys, args)
            read = tuple((value, server) for value in found)
        status, index, value, *rest = raw
        if status == 1:
            values = tuple(int(v) for v in rest[0::2])
            epochs = tuple(e.decode() if isinstance(e, bytes) else str(e) for e in rest[1::2])
            return Reservation(ok=True, values=values, epochs=epochs, versions=read)
        return Reservation(ok=False, failed=int(index) - 1, value=int(value), missing=status == -1, versions=read)

    async def _versions_then(self, script, versions: list[str], keys: list[str], args: list) -> tuple[list, list]:
        """Run the versions script on `versions`, then `script` on `keys` and `args`, in one
        pipeline (no MULTI: Redis runs a connection's commands in order). A script Redis does not
        know (restarted, flushed) is loaded and the pipeline sent again; if only the versions
        script was unknown, `script` has run, so the versions are read alone, just after it.

        Raises:
            redis.exceptions.RedisError: what either script raised."""
        starts = [secrets.randbits(62) for _ in versions]
        for attempt in range(2):
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.evalsha(self._versions.sha, len(versions), *versions, *starts)
                pipe.evalsha(script.sha, len(keys), *keys, *args)
                first, second = await pipe.execute(raise_on_error=False)
            unknown = [isinstance(r, NoScriptError) for r in (first, second)]
            if attempt == 0 and unknown == [True, False]:  # `script` ran: never run it twice
                first = await self._versions(keys=versions, args=starts)  # read just after, instead
            elif attempt == 0 and any(unknown):
                for missing, loaded in zip(unknown, (self._versions, script), strict=True):
                    if missing:
                        await self._redis.script_load(loaded.script)
                continue
            for result in (first, second):
                if isinstance(result, Exception):
                    raise result
            return first, second
        raise AssertionError("unreachable")  # pragma: no cover

    async def read_versions(self, names: list[str]) -> list[tuple[bytes, bytes]]:
        """The config versions `names` (`core.freshness`), each as (value, replication id of the
        server that answered): a version read from a promoted replica or a restarted server
        never equals one read before, even if that server lost the bump. A missing version is
        started at a random value first (SPEC §3: a lost version never equals a cached one). One
        script per hash slot, run concurrently (one round trip on one server or a Sentinel's
        primary)."""
        out: list[tuple[bytes, bytes]] = [(b"", b"")] * len(names)
        groups = slot_groups(names, self._cluster)

        async def one(indexes: list[int]) -> None:
            starts = [secrets.randbits(62) for _ in indexes]
            server, *values = await self._versions(keys=[names[i] for i in indexes], args=starts)
            for i, value in zip(indexes, values, strict=True):
                out[i] = (value, server)

        if len(groups) == 1:
            await one(groups[0])
        else:
            await asyncio.gather(*(one(group) for group in groups))
        return out

    async def seed_counter(self, name: str, value: int, ttl_seconds: int | None, generation: int) -> str:
        """Create counter `name` at `value` (counter units, read from the database at usage-write
        `generation`) in a new epoch, unless it exists and was written under this Redis server;
        returns the counter's epoch."""
        epoch = await self._seed(keys=self._keys([name]), args=[value, ttl_seconds or 0, self._new_epoch(), generation])
        return epoch.decode() if isinstance(epoch, bytes) else str(epoch)

    async def settle(self, items: list[Settle]) -> list[tuple[int, str] | None]:
        """Add each item's delta (see `Settle`); per item the counter and its epoch after it, or
        None for a counter that is missing or was written under another Redis server (nothing
        was added). The items are one request's: one hash slot."""
        if not items:
            return []
        args: list[int | str] = []
        for item in items:
            args += [item.epoch, item.same, item.other]
        raw = await self._settle(keys=self._keys(i.name for i in items), args=args)
        out: list[tuple[int, str] | None] = []
        for value, epoch in zip(raw[0::2], raw[1::2], strict=True):
            out.append(None if value is None else (int(value), epoch.decode() if isinstance(epoch, bytes) else epoch))
        return out

    async def adopt(self, name: str, epoch: str, amount: int) -> bool:
        """Add `amount` (reservations still in flight that a rebuilt counter does not hold) to
        counter `name` if it is in `epoch`; whether it was added."""
        return bool(await self._adopt(keys=self._keys([name]), args=[epoch, amount]))

    async def after_write(self, items: list[Written]) -> int:
        """Once usage events are in the database, make every counter that did not count them
        count them, exactly once (SPEC §3). Per item, for the counter as it is now:
        - in the epoch the usage was settled into, or missing (or written under another Redis
          server): nothing (a later seed reads the event from the database);
        - never settled (`settled_in` "!": an interrupted request), in the epoch that took the
          reservation: actual - reserved is added now;
        - not settled (`settled_in` "": Redis did not answer the settle), in the epoch that took
          the reservation: nothing, since Redis may have run it; the counter keeps at most the
          reservation too much, which refuses early and never lets a limit pass;
        - otherwise the counter was rebuilt: if its seed read the database at a generation up to
          the event's, the seed did not see the event and `actual` is added; a later seed did.
        Returns how many items changed a counter. Items go to Redis in groups of one hash tag."""
        groups: dict[str, list[Written]] = {}
        for item in items:
            groups.setdefault(hash_tag(item.name), []).append(item)
        added = 0
        for group in groups.values():
            args: list[int | str] = []
            for item in group:
                args += [item.settled_in, item.epoch, item.reserved, item.actual, item.generation]
            added += int(await self._after_write(keys=self._keys(i.name for i in group), args=args))
        return added

    async def read(self, names: list[str]) -> list[int | None]:
        """What each counter holds, None for one that is missing or was written under another
        Redis server (the caller seeds it). One script per hash slot."""
        out: list[int | None] = [None] * len(names)
        for indexes in slot_groups(names, self._cluster):
            values = await self._read(keys=self._keys(names[i] for i in indexes))
            for i, value in zip(indexes, values, strict=True):
                out[i] = None if value is None else int(value)
        return out

    async def close(self) -> None:
        await self._redis.aclose()


def make_counters() -> LocalCounters | RedisCounters:
    """Redis counters when `REDIS_URL` is set, else in-process ones."""
    if settings.REDIS_URL:
        return RedisCounters(settings.REDIS_URL)
    return LocalCounters()
