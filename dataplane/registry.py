"""What the data plane knows about keys and models, cached per process.

A request needs a key's gateway, status, expiry and limits, and its model's provider and prices.
These are read from the database once and kept until a write changes them: every request checks
the versions of its key's resource group and of the catalog (`core.freshness`, one round trip)
and reloads what changed before it is served, so a warm key costs no SQL and a change made
anywhere holds from the next request in every process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from asgiref.sync import sync_to_async
from django.db import close_old_connections
from django.db.models import Q

from core.freshness import catalog_version_name, group_version_name, read_local
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


def _level(api_key_id, gateway_id, group_id) -> tuple[str, int]:
    """The level and entity id of a limit row from its three owner columns (one is set)."""
    if api_key_id:
        return "api_key", api_key_id
    if gateway_id:
        return "gateway", gateway_id
    return "resource_group", group_id


def _load_limits(api_key, gateway) -> tuple[tuple[LimitRule, ...], OwnBudget | None]:
    """Every limit on the key, its gateway and its group (three queries reading only the columns
    needed), in a fixed order; and the key's own budget (enforced or not, not archived)."""
    group_id = gateway.resource_group_id  # every limit of the key is in its group's hash slot
    owners = ("api_key_id", "gateway_id", "resource_group_id")

    def owned(model, *fields):
        mine = Q(api_key_id=api_key.pk) | Q(gateway_id=gateway.pk) | Q(resource_group_id=group_id)
        return model.objects.filter(mine).values_list(*owners, *fields)

    rules = []
    for *owner, limit, period, mode in owned(TokenQuota, "limit_tokens", "refresh_period", "mode"):
        level, entity = _level(*owner)
        rules.append(LimitRule("tokens", level, entity, limit, period, mode == LimitMode.HARD, group_id=group_id))
    own_budget = None
    budgets = owned(SpendBudget, "limit_usd", "refresh_period", "mode", "active").filter(archived_at__isnull=True)
    for *owner, limit_usd, period, mode, active in budgets.order_by("pk"):  # the own budget: the first
        level, entity = _level(*owner)
        if level == "api_key" and own_budget is None:
            own_budget = OwnBudget(limit_usd, period, active)
        if active:
            rules.append(
                LimitRule(
                    "spend", level, entity, usd_to_units(limit_usd), period, mode == LimitMode.HARD, group_id=group_id
                )
            )
    for *owner, tpm, rpm in owned(RateLimit, "tokens_per_minute", "requests_per_minute"):
        level, entity = _level(*owner)
        if tpm:
            rules.append(LimitRule("tpm", level, entity, tpm, MINUTE, group_id=group_id))
        if rpm:
            rules.append(LimitRule("rpm", level, entity, rpm, MINUTE, group_id=group_id))
    order = {"api_key": 0, "gateway": 1, "resource_group": 2}
    kinds = {"rpm": 0, "tpm": 1, "tokens": 2, "spend": 3}
    rules.sort(key=lambda rule: (order[rule.level], kinds[rule.kind]))
    if len(_RULES) > MAX_ENTRIES:
        _RULES.clear()
    return tuple(_RULES.setdefault(rule, rule) for rule in rules), own_budget


# One object per distinct rule: the keys of a gateway share its and their group's rules (50,000
# keys with 12 limits each hold 4 rules apiece, not 12: about 55 MB less).
_RULES: dict[LimitRule, LimitRule] = {}


def _load_key(hashed_secret: str) -> KeyContext | None:
    close_old_connections()
    api_key = (
        ApiKey.objects.select_related("gateway", "gateway__resource_group").filter(hashed_secret=hashed_secret).first()
    )
    if api_key is None:
        return None
    gateway = api_key.gateway
    allowed = None if gateway.all_models else frozenset(gateway.allowed_models.values_list("name", flat=True))
    limits, own_budget = _load_limits(api_key, gateway)
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
        limits=limits,
        own_budget=own_budget,
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
MISS_RELOAD_SECONDS = 0.1

# (version names) → one value per name that compares equal only to the same version as read
# before: Redis' `RedisCounters.read_versions`, or the embedded default's version file.
ReadVersions = Callable[[list[str]], Awaitable[list]]


async def _read_local_versions(names: list[str]) -> list[int]:
    return read_local(names)


class Registry:
    """Keys by hashed secret and models by name, as the data plane sees them, per process.

    Each cached key is stored with the version of its resource group, and the model map with
    the catalog's version, as read just before they were loaded from the database
    (`core.freshness`). Every request reads both current versions in one round trip
    (`read_versions`: one script per hash slot in Redis, whose answer also names the Redis server,
    so a failover or a restart never looks like the version a process cached; or a file's identity
    on the embedded default) and reloads, inline
    and before it is served, whatever was loaded under an older one: a revoke, a rotation, a
    disabled gateway, a new or changed limit, model or price holds from the next request in every
    process, while a warm key costs no SQL. A key's group never changes, so it is remembered.
    Unknown secrets are cached as None and reloaded at most every MISS_RELOAD_SECONDS (a flood of
    made-up keys cannot become a flood of queries); to bound memory the maps are emptied when
    they hold MAX_ENTRIES.
    """

    def __init__(self, read_versions: ReadVersions | None = None) -> None:
        # Redis starts a missing version (never bumped, or Redis restarted empty) at a random
        # value, set only if still missing, so a Redis that lost its versions, and any bump lost
        # while it was down, can never leave them equal to what a process has cached.
        self._read_versions = read_versions or _read_local_versions
        self._load_key = sync_to_async(_load_key, thread_sensitive=True)
        self._load_models = sync_to_async(_load_models, thread_sensitive=True)
        self._keys: dict[str, tuple[KeyContext | None, Hashable, float]] = {}  # → (key, group version, loaded at)
        self._group_of: dict[str, int] = {}  # hashed secret → resource group id
        self._routes: tuple[dict[str, ModelRoute], Hashable] | None = None  # (map, catalog version)
        self._loading: dict = {}  # what is being loaded → the one task loading it

    async def _versions(self, group_id: int) -> tuple[Hashable, Hashable]:
        group, catalog = await self._read_versions([group_version_name(group_id), catalog_version_name()])
        return group, catalog

    async def _once(self, what, load):
        """Run `load()` once for all the requests that need `what` reloaded at the same time."""
        task = self._loading.get(what)
        if task is None:
            task = asyncio.get_running_loop().create_task(load())
            self._loading[what] = task
            task.add_done_callback(lambda _: self._loading.pop(what, None))
        return await asyncio.shield(task)

    async def key(self, hashed_secret: str) -> KeyContext | None:
        """The key with this hashed secret as the database holds it now, or None if there is
        none. Also drops the model map if the catalog changed, so `model()` reloads it."""
        group_id = self._group_of.get(hashed_secret)
        if group_id is None:
            entry = self._keys.get(hashed_secret)
            if entry is not None and entry[0] is None and time.monotonic() - entry[2] < MISS_RELOAD_SECONDS:
                return None
            key = await self._once(("key", hashed_secret), lambda: self._load_key(hashed_secret))
            if key is None:
                self._store_key(hashed_secret, None, 0)
                return None
            group_id = self._group_of[hashed_secret] = key.resource_group_id
        group_version, catalog_version = await self._versions(group_id)
        if self._routes is not None and self._routes[1] != catalog_version:
            self._routes = None
        entry = self._keys.get(hashed_secret)
        if entry is not None and entry[1] == group_version:
            return entry[0]

        async def load() -> KeyContext | None:
            key = await self._load_key(hashed_secret)
            self._store_key(hashed_secret, key, group_version)
            return key

        return await self._once(("key", hashed_secret, group_version), load)

    def cached(self, hashed_secret: str) -> tuple[KeyContext, list[str], tuple[Hashable, Hashable]] | None:
        """The key with this hashed secret as this process last loaded it, without asking if it
        is current, with the names of the versions that say so (its group's and the catalog's)
        and the versions it and the model map were loaded under; None when either is not loaded.
        A caller reads those versions in the round trip it makes anyway (the limit check,
        `LimitEngine.admit(versions=…)`) and, if they differ, asks `key()`."""
        entry = self._keys.get(hashed_secret)
        group_id = self._group_of.get(hashed_secret)
        if entry is None or entry[0] is None or group_id is None or self._routes is None:
            return None
        return entry[0], [group_version_name(group_id), catalog_version_name()], (entry[1], self._routes[1])

    def _store_key(self, hashed_secret: str, key: KeyContext | None, group_version: Hashable) -> None:
        if len(self._keys) >= MAX_ENTRIES and hashed_secret not in self._keys:
            self._keys.clear()
            self._group_of.clear()
        self._keys[hashed_secret] = (key, group_version, time.monotonic())

    async def models(self) -> dict[str, ModelRoute]:
        """Every enabled model by name, as of the catalog version the request's `key()` read
        (or loaded now, if the catalog changed since the map was loaded)."""
        if self._routes is not None:
            return self._routes[0]

        async def load() -> dict[str, ModelRoute]:
            (catalog_version,) = await self._read_versions([catalog_version_name()])
            routes = await self._load_models()
            self._routes = (routes, catalog_version)
            return routes

        return await self._once("models", load)

    async def model(self, name: str) -> ModelRoute | None:
        """The enabled model called `name`, or None: a model created, changed or disabled before
        the request was sent is always seen as it is now."""
        return (await self.models()).get(name)
