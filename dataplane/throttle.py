"""The data plane's throttle on invalid API keys, per client address (SPEC §9 "Hardening").

A client address that sends more than `AIGW_INVALID_KEY_LIMIT` (default 20) requests with an
unknown or missing key within `AIGW_INVALID_KEY_WINDOW_SECONDS` (default 60 s, counted from its
first such request) gets 429 `rate_limit_exceeded` with `Retry-After` until the window ends.
Requests with a valid key are never counted and never refused.

Costs: a valid key pays nothing beyond one dict lookup (no Redis round trip). An invalid attempt
under the limit pays one round trip to Redis (INCR and EXPIRE in one script) when `REDIS_URL`
is set, shared by every process, else nothing but process memory; no database write either way.
(One key per address, so a Redis Cluster needs no hash tag for it.)
Once an address is over the limit, this process refuses its further attempts before the key is
looked up at all, except for secrets this process has already seen to be valid keys (served as
usual) and one probe per PROBE_INTERVAL_SECONDS per address, so a valid key new to this process
still gets in while a flood costs at most one database query a second per address.
"""

from __future__ import annotations

import math
import time

from core.client_address import scope_client_address
from core.redis import async_client
from dataplane.errors import too_many_invalid_keys

MAX_ADDRESSES = 50_000  # most addresses (and valid secrets) remembered per process; oldest go first
PROBE_INTERVAL_SECONDS = 1.0  # an address over the limit may have one key looked up this often

_COUNT = """
local value = redis.call('INCR', KEYS[1])
if value == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {value, ttl}
"""


def _bounded_set(entries: dict, key, value) -> None:
    """Store `value` under `key`, dropping the oldest entries once MAX_ADDRESSES are held."""
    entries.pop(key, None)
    while len(entries) >= MAX_ADDRESSES:
        del entries[next(iter(entries))]
    entries[key] = value


class InvalidKeyThrottle:
    """Counts invalid-key attempts per client address; refuses an address over the limit."""

    def __init__(
        self,
        *,
        limit: int,
        window_seconds: int,
        redis_url: str = "",
        redis_prefix: str = "aigw",
    ) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self._prefix = f"{redis_prefix}:invalid-key:"
        self._redis = None
        self._count_script = None
        if redis_url:
            self._redis = async_client(redis_url)
            self._count_script = self._redis.register_script(_COUNT)
        # Process memory, wall-clock seconds since the epoch: address -> [count, window end]
        # (without Redis) and address -> [blocked until, next probe] (both modes).
        self._windows: dict[str, list[float]] = {}
        self._blocked: dict[str, list[float]] = {}
        self._valid: dict[str, None] = {}

    @classmethod
    def from_settings(cls) -> InvalidKeyThrottle:
        from django.conf import settings

        return cls(
            limit=settings.AIGW_INVALID_KEY_LIMIT,
            window_seconds=settings.AIGW_INVALID_KEY_WINDOW_SECONDS,
            redis_url=settings.REDIS_URL,
            redis_prefix=settings.AIGW_REDIS_PREFIX,
        )

    def check(self, scope, hashed_secret: str) -> None:
        """Before the key is looked up: raise 429 if this request's address is over the limit,
        unless `hashed_secret` is one this process has already seen valid or this request is the
        address's probe (one per PROBE_INTERVAL_SECONDS). No I/O.

        Raises:
            dataplane.errors.ProxyError: 429 with `retry-after` (seconds).
        """
        if not self._blocked or hashed_secret in self._valid:
            return
        address = scope_client_address(scope)
        blocked = self._blocked.get(address)
        if blocked is None:
            return
        now = time.time()
        remaining = blocked[0] - now
        if remaining <= 0:
            del self._blocked[address]
            return
        if now >= blocked[1]:
            blocked[1] = now + PROBE_INTERVAL_SECONDS
            return
        raise too_many_invalid_keys(max(1, math.ceil(remaining)))

    def remember_valid(self, hashed_secret: str) -> None:
        """Note a secret that authenticated, so an address over the limit can still use it."""
        if hashed_secret not in self._valid:
            _bounded_set(self._valid, hashed_secret, None)

    async def count_invalid(self, scope) -> None:
        """Count one invalid-key attempt of this request's address.

        Raises:
            dataplane.errors.ProxyError: 429 with `retry-after` (seconds) when this attempt
                is over the limit; the address is then refused until its window ends.
        """
        address = scope_client_address(scope)
        now = time.time()
        if self._count_script is not None:
            count, ttl = await self._count_script(keys=[self._prefix + address], args=[self.window_seconds])
            count, window_end = int(count), now + int(ttl)
        else:
            window = self._windows.get(address)
            if window is None or window[1] <= now:
                window = [0, now + self.window_seconds]
                _bounded_set(self._windows, address, window)
            window[0] += 1
            count, window_end = int(window[0]), window[1]
        if count > self.limit:
            if address not in self._blocked:
                _bounded_set(self._blocked, address, [window_end, now])  # the first probe: at once
            else:
                self._blocked[address][0] = window_end
            raise too_many_invalid_keys(max(1, math.ceil(window_end - now)))

    async def close(self) -> None:
        """Close the Redis connections, if any."""
        if self._redis is not None:
            await self._redis.aclose()
