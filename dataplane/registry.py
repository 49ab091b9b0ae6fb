"""What the data plane knows about keys and models, cached per process.

A request needs a key's gateway, status, expiry and limits, and its model's provider and prices.
These are read from the database once and then kept for `AIGW_CONFIG_TTL_SECONDS` (0.5 s by
default); a stale entry is served while one background reload refreshes it, so a warm key costs
no SQL and a change made in the console reaches every process within about one TTL.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

from gateway.models import Model
from gateway.pricing import Prices
from keys.models import ApiKey
from quotas.counters import usd_to_units
from quotas.engine import MINUTE, LimitRule
from quotas.models import LimitMode, RateLimit, SpendBudget, TokenQuota


@dataclass(frozen=True, slots=True)
class OwnBudget:
    """The key's own (API-key level, not archived) spend budget, enforced or not, for GET /v1/quotas."""

    limit_usd: Decimal
    refresh_period: str
    active: bool


@dataclass(frozen=True, slots=True)
class KeyContext:
    """A snapshot of one API key and everything that governs it. Times are aware UTC."""

    key_id: int
    key_name: str
    status: str
    suspended_reason: str
    expires_at: datetime | None
    gateway_id: int
    gateway_name: str
    gateway_serves: bool
    resource_group_id: int
    allowed_models: frozenset[str] | None  # None: every enabled model (`Gateway.all_models`); empty: none
    limits: tuple[LimitRule, ...]  # every limit on the key, its gateway and its group
    own_budget: OwnBudget | None = None

    @property
    def needs_estimate(self) -> bool:
        """True when a limit needs the prompt estimate before forwarding (TPM, hard limits)."""
        return any(rule.hard or rule.kind == "tpm" for rule in self.limits)

    @property
    def has_hard_limit(self) -> bool:
        """True when a hard spend budget or token quota governs the key: its requests reserve
        their bound, and go upstream with the output cap that the bound assumed."""
        return any(rule.hard for rule in self.limits)


@dataclass(frozen=True, slots=True)
class ModelRoute:
    """A model name and where it goes: provider kind, base URL, decrypted credential, prices."""

    name: str
    upstream_model: str
    provider_name: str
    provider_kind: str
    base_url: str
    credential: str
    provider_settings: dict
    prices: Prices
    max_output_tokens: int | None


def _load_limits(api_key, gateway) -> tuple[LimitRule, ...]:
    def owned(model):
        return (
            model.objects.filter(api_key=api_key)
            | model.objects.filter(gateway=gateway)
            | model.objects.filter(resource_group_id=gateway.resource_group_id)
        )

    rules = []
    for quota in owned(TokenQuota):
        rules.append(
            LimitRule(
                "tokens",
                quota.level,
                quota.entity_id,
                quota.limit_tokens,
                quota.refresh_period,
                quota.mode == LimitMode.HARD,
            )
        )
    for budget in owned(SpendBudget).filter(active=True, archived_at__isnull=True):
        rules.append(
            LimitRule(
                "spend",
                budget.level,
                budget.entity_id,
                usd_to_units(budget.limit_usd),
                budget.refresh_period,
                budget.mode == LimitMode.HARD,
            )
        )
    for rate in owned(RateLimit):
        if rate.tokens_per_minute:
            rules.append(LimitRule("tpm", rate.level, rate.entity_id, rate.tokens_per_minute, MINUTE))
        if rate.requests_per_minute:
            rules.append(LimitRule("rpm", rate.level, rate.entity_id, rate.requests_per_minute, MINUTE))
    order = {"api_key": 0, "gateway": 1, "resource_group": 2}
    kinds = {"rpm": 0, "tpm": 1, "tokens": 2, "spend": 3}
    rules.sort(key=lambda rule: (order[rule.level], kinds[rule.kind]))
    return tuple(rules)


def _load_key(hashed_secret: str) -> KeyContext | None:
    close_old_connections()
    api_key = (
        ApiKey.objects.select_related("gateway", "gateway__resource_group").filter(hashed_secret=hashed_secret).first()
    )
    if api_key is None:
        return None
    gateway = api_key.gateway
    allowed = None if gateway.all_models else frozenset(gateway.allowed_models.values_list("name", flat=True))
    budget = SpendBudget.objects.filter(api_key=api_key, archived_at__isnull=True).first()
    return KeyContext(
        key_id=api_key.pk,
        key_name=api_key.name,
        status=api_key.status,
        suspended_reason=api_key.suspended_reason,
        expires_at=api_key.expires_at,
        gateway_id=gateway.pk,
        gateway_name=gateway.name,
        gateway_serves=gateway.serves_requests,
        resource_group_id=gateway.resource_group_id,
        allowed_models=allowed,
        limits=_load_limits(api_key, gateway),
        own_budget=OwnBudget(budget.limit_usd, budget.refresh_period, budget.active) if budget else None,
    )


def _load_models() -> dict[str, ModelRoute]:
    close_old_connections()
    routes = {}
    for model in Model.objects.select_related("provider").filter(enabled=True):
        provider = model.provider
        routes[model.name] = ModelRoute(
            name=model.name,
            upstream_model=model.upstream_model,
            provider_name=provider.name,
            provider_kind=provider.kind,
            base_url=provider.base_url,
            credential=provider.get_credential(),
            provider_settings=dict(provider.settings or {}),
            prices=Prices(
                input=_decimal(model.input_price_per_mtok),
                cached_input=_decimal(model.cached_input_price_per_mtok),
                cache_write=_decimal(model.cache_write_price_per_mtok),
                output=_decimal(model.output_price_per_mtok),
            ),
            max_output_tokens=model.max_output_tokens,
        )
    return routes


def _decimal(value) -> Decimal | None:
    return None if value is None else Decimal(value)


MAX_ENTRIES = 100_000


class _TtlCache:
    """A per-process map of loaded values, refreshed in the background once stale.

    Unknown keys are cached too (as None); to keep a flood of made-up keys from growing the map
    without end, it is emptied when it holds `MAX_ENTRIES`.
    """

    def __init__(self, loader, ttl: float) -> None:
        self._loader = sync_to_async(loader, thread_sensitive=True)
        self._ttl = ttl
        self._entries: dict = {}  # key → (value, monotonic time its load started)
        self._refreshing: set = set()
        self._loading: dict = {}  # key → the task of the one load on demand under way

    async def get(self, key):
        entry = self._entries.get(key)
        now = time.monotonic()
        if entry is None:
            value = await self._loader(*key)
            self._store(key, value, now)
            return value
        value, loaded_at = entry
        if now - loaded_at > self._ttl and key not in self._refreshing:
            if now - loaded_at > 10 * self._ttl:
                # Too old to serve even once more: reload inline.
                value = await self._loader(*key)
                self._entries[key] = (value, now)
                return value
            self._refreshing.add(key)
            asyncio.get_running_loop().create_task(self._refresh(key))
        return value

    async def _refresh(self, key) -> None:
        started = time.monotonic()
        try:
            self._entries[key] = (await self._loader(*key), started)
        finally:
            self._refreshing.discard(key)

    async def fresh_since(self, key, asked_at: float, min_interval: float):
        """The value as loaded by a load that started at or after `asked_at` (monotonic seconds).

        Used on a miss (a model name not in the map): a model created before the request was
        sent is always found, even if the map was loaded a moment earlier. Loads on demand are
        single-flight and start at most once per `min_interval`, so a flood of made-up names
        costs at most one query per `min_interval`; such a request waits that long for its 404.
        """
        while True:
            entry = self._entries.get(key)
            if entry is not None and entry[1] >= asked_at:
                return entry[0]
            loading = self._loading.get(key)
            if loading is not None:
                await asyncio.shield(loading)
                continue
            if entry is not None:
                wait = entry[1] + min_interval - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue
            task = asyncio.get_running_loop().create_task(self._load_now(key))
            self._loading[key] = task
            try:
                await asyncio.shield(task)
            finally:
                if self._loading.get(key) is task:
                    del self._loading[key]

    async def _load_now(self, key) -> None:
        started = time.monotonic()
        self._store(key, await self._loader(*key), started)

    async def reload_if_older(self, key, seconds: float):
        """Reload inline unless the entry was loaded less than `seconds` ago; returns the value.

        Used on a miss (unknown key or model name), so a key or model created a moment ago
        works at once, while a flood of unknown names costs at most one query per `seconds`.
        """
        entry = self._entries.get(key)
        if entry is not None and time.monotonic() - entry[1] < seconds:
            return entry[0]
        value = await self._loader(*key)
        self._store(key, value, time.monotonic())
        return value

    def _store(self, key, value, loaded_at: float) -> None:
        if len(self._entries) >= MAX_ENTRIES and key not in self._entries:
            self._entries.clear()
        self._entries[key] = (value, loaded_at)


MISS_RELOAD_SECONDS = 0.1


class Registry:
    """Keys by hashed secret and models by name, as the data plane sees them."""

    def __init__(self, ttl: float | None = None) -> None:
        ttl = settings.AIGW_CONFIG_TTL_SECONDS if ttl is None else ttl
        self._keys = _TtlCache(_load_key, ttl)
        self._models = _TtlCache(_load_models, ttl)

    async def key(self, hashed_secret: str) -> KeyContext | None:
        """The key with this hashed secret, or None if there is none."""
        key = await self._keys.get((hashed_secret,))
        if key is None:
            key = await self._keys.reload_if_older((hashed_secret,), MISS_RELOAD_SECONDS)
        return key

    async def model(self, name: str) -> ModelRoute | None:
        """The enabled model called `name`, or None (then only after a load that started after
        this call: a model created before the request is never reported missing)."""
        asked_at = time.monotonic()
        route = (await self._models.get(())).get(name)
        if route is None:
            route = (await self._models.fresh_since((), asked_at, MISS_RELOAD_SECONDS)).get(name)
        return route

    async def models(self) -> dict[str, ModelRoute]:
        """Every enabled model by name."""
        return await self._models.get(())
