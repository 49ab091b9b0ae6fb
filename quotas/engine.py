"""The limit engine's one question from the data plane: may this request go, and reserve.

`admit` checks every limit on every level of a key (API key, gateway, resource group) in one
atomic check-and-reserve over the shared counters, and raises `LimitExceeded` naming the first
level and limit that is over. `settle` replaces what was reserved with the real usage and cost
(or releases it when the upstream failed). Windows are recognised from the clock on each
request, so a new day, week, month or minute starts at its exact UTC second with no job run.

Per kind of limit (SPEC §3):
- token quota (`tokens`): soft: rejected once used >= quota; hard: an upper bound of the
  request's tokens that no provider's count passes is reserved, so usage never passes the quota.
- spend budget (`spend`, 1e-10 USD units): soft (Vercel): rejected once spend >= limit;
  hard: that bound at the dearest prices is reserved before forwarding.
- TPM (`tpm`): the prompt estimate is reserved and must fit in the minute; corrected after.
- RPM (`rpm`): one request is reserved and must fit in the minute.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from asgiref.sync import sync_to_async

from core.redis import REDIS_ERRORS
from gateway.pricing import Prices, TokenUsage
from keys.models import ApiKey, ApiKeyStatus, SuspendedReason
from quotas.counters import (
    CounterCheck,
    Counters,
    Settle,
    Written,
    counter_name,
    minute_tag,
    units_to_usd,
    usd_to_units,
    window_tag,
)
from quotas.models import Level, RefreshPeriod
from quotas.periods import window_end, window_start
from quotas.selectors import used_for_seed, used_in_window
from quotas.services import api_key_reactivate_after_token_quota, api_keys_suspend_for_token_quota

log = logging.getLogger(__name__)

LEVEL_LABELS: dict[str, str] = {
    Level.API_KEY: "API key",
    Level.GATEWAY: "gateway",
    Level.RESOURCE_GROUP: "resource group",
}
_WINDOW_WORDS: dict[str, str] = {
    RefreshPeriod.NONE: "",
    RefreshPeriod.DAILY: " today (UTC)",
    RefreshPeriod.WEEKLY: " this week (UTC)",
    RefreshPeriod.MONTHLY: " this month (UTC)",
}
MINUTE = "minute"
SUSPEND_EVERY_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class LimitRule:
    """One limit on one level, as the data plane holds it.

    `kind`: `tokens`, `spend`, `tpm` or `rpm`; `limit` in counter units (tokens, 1e-10 USD,
    requests); `period`: a RefreshPeriod for tokens/spend, `minute` for tpm/rpm; `group_id`: the
    resource group of the owner (the key's, the gateway's, or the group itself), whose hash tag
    its counter carries (`quotas.counters.counter_name`).
    """

    kind: str
    level: str
    entity_id: int
    limit: int
    period: str
    hard: bool = False
    group_id: int = field(kw_only=True)


@dataclass(frozen=True, slots=True)
class Estimate:
    """What a request may use, in tokens and 1e-10 USD units.

    `prompt_tokens`: the o200k estimate of the prompt (TPM reserves it). `bound_tokens`: an
    upper bound on the prompt and output tokens together that no provider's count passes
    (`quotas.estimate.prompt_bound` + `output_bound`; hard token quotas reserve it).
    `worst_cost_units`: `bound_tokens` at the dearest prices (hard spend budgets reserve it).
    `prompt_bound`: the prompt's part of `bound_tokens`.
    """

    prompt_tokens: int = 0
    bound_tokens: int = 0
    worst_cost_units: int = 0
    prompt_bound: int = 0

    @classmethod
    def of(cls, prompt_tokens: int, prompt_bound: int, output_bound: int, prices: Prices) -> Estimate:
        """The estimate for a request of `prompt_tokens` (estimated) whose prompt and output are
        at most `prompt_bound` and `output_bound` tokens: the worst cost has every prompt token at
        the dearest input price (input or cache write) and every output token at the output
        price (USD per million tokens), rounded up to a whole unit."""
        input_price = max(p for p in (prices.input, prices.cache_write, Decimal(0)) if p is not None)
        worst = (prompt_bound * input_price + output_bound * (prices.output or Decimal(0))) / 1_000_000
        return cls(prompt_tokens, prompt_bound + output_bound, math.ceil(worst * 10**10), prompt_bound)


class StaleConfig(Exception):
    """The key or catalog snapshot a request was admitted with has changed since it was
    cached: nothing is reserved; take the request again with what the database holds now."""


class LimitExceeded(Exception):
    """A limit rejects the request: `code` is the SPEC §4 error code, `type` OpenAI's error type,
    `retry_after` seconds for rate limits (None otherwise)."""

    def __init__(self, *, rule: LimitRule, code: str, type: str, message: str, retry_after: int | None = None):  # noqa: A002
        super().__init__(message)
        self.rule = rule
        self.code = code
        self.type = type
        self.message = message
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Admission:
    """What `admit` reserved: per rule, its counter name, the amount reserved, the counter after
    and the counter's epoch that holds the reservation (`epochs` changes when a rebuilt counter
    adopts the reservation; see `quotas.counters`)."""

    key_id: int
    now: datetime
    rules: tuple[LimitRule, ...] = ()
    names: tuple[str, ...] = ()
    reserved: tuple[int, ...] = ()
    values: tuple[int, ...] = ()
    epochs: list[str] = field(default_factory=list)

    def interrupted(self, estimate: Estimate, prices: Prices, hard: bool) -> tuple[dict, list[dict]]:
        """What the request is charged if its process dies before its outcome (SPEC §3): its
        reserved worst case under a hard limit (`hard`), else its prompt estimate at the input
        price; and per token-quota and spend counter a dict of `Written` fields (`settled_in`
        "!": never settled) to settle that charge with. Tokens, and USD as a decimal string."""
        if hard:
            input_tokens, output_tokens = estimate.prompt_bound, estimate.bound_tokens - estimate.prompt_bound
            cost_units = estimate.worst_cost_units
        else:
            input_tokens, output_tokens = estimate.prompt_tokens, 0
            cost_units = usd_to_units(prices.cost(TokenUsage(input_tokens=input_tokens)))
        limits = [
            {
                "name": name,
                "settled_in": "!",
                "epoch": epoch,
                "reserved": reserved,
                "actual": cost_units if rule.kind == "spend" else input_tokens + output_tokens,
                "generation": -1,
            }
            for rule, name, reserved, epoch in zip(self.rules, self.names, self.reserved, self.epochs, strict=True)
            if rule.kind in ("tokens", "spend")
        ]
        charge = {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cost_usd": str(units_to_usd(cost_units)),
        }
        return charge, limits

    def rate_limit_headers(self) -> dict[str, str]:
        """OpenAI's `x-ratelimit-*` headers for the tightest TPM and RPM limits (empty if none)."""
        headers: dict[str, str] = {}
        reset = f"{seconds_to_next_minute(self.now)}s"
        for kind, word in (("rpm", "requests"), ("tpm", "tokens")):
            pairs = [(r.limit, v) for r, v in zip(self.rules, self.values, strict=True) if r.kind == kind]
            if pairs:
                limit, used = min(pairs, key=lambda pair: pair[0] - pair[1])
                headers[f"x-ratelimit-limit-{word}"] = str(limit)
                headers[f"x-ratelimit-remaining-{word}"] = str(max(limit - used, 0))
                headers[f"x-ratelimit-reset-{word}"] = reset
        return headers


def seconds_to_next_minute(now: datetime) -> int:
    """Whole seconds until the next UTC minute starts (at least 1)."""
    return max(1, math.ceil(60 - (now.timestamp() % 60)))


def _ttl_seconds(period: str, now: datetime) -> int | None:
    if period == MINUTE:
        return 120
    end = window_end(period, now)
    if end is None:
        return None
    return int((end - now).total_seconds()) + 86_400  # a day's grace for the period-closing job


class LimitEngine:
    """Checks, reserves and settles limits for the data plane. One per process."""

    def __init__(self, counters: Counters) -> None:
        self.counters = counters
        self._background: set[asyncio.Task] = set()
        self._suspended_at: dict[tuple[str, int], float] = {}
        # Reservations in flight, per counter name: id(admission) -> (admission, rule index).
        self._holds: dict[str, dict[int, tuple[Admission, int]]] = {}

    def _check(self, rule: LimitRule, now: datetime, estimate: Estimate) -> CounterCheck:
        if rule.kind == "rpm":
            amount, strict = 1, True
        elif rule.kind == "tpm":
            amount, strict = estimate.prompt_tokens, True
        elif rule.kind == "tokens":
            amount = estimate.bound_tokens if rule.hard else 0
            strict = rule.hard
        else:
            amount, strict = (estimate.worst_cost_units, True) if rule.hard else (0, False)
        tag = minute_tag(now) if rule.period == MINUTE else window_tag(rule.period, now)
        return CounterCheck(
            name=counter_name(rule.kind, rule.level, rule.entity_id, tag, group_id=rule.group_id),
            limit=rule.limit,
            amount=amount,
            strict=strict,
            seedable=rule.kind in ("tokens", "spend"),
            ttl_seconds=_ttl_seconds(rule.period, now),
        )

    async def admit(
        self,
        key,
        rules: tuple[LimitRule, ...],
        now: datetime,
        estimate: Estimate,
        versions: tuple[list[str], tuple] | None = None,
    ) -> Admission:
        """Check every rule of `key` at `now` (aware UTC) and reserve what the request may use.

        `versions`: (config-version names, the values `key` and `rules` were loaded under), for
        a snapshot not yet known to be current (`dataplane.registry.Registry.cached`): the
        versions are read in the same round trip as the check, just before it; if they differ,
        whatever was reserved is given back and nothing else happens.

        Raises:
            StaleConfig: `versions` differ from what Redis holds now.
            LimitExceeded: with `token_quota_exceeded` / `budget_exceeded` (type
                `insufficient_quota`) or `rate_limit_exceeded` (with `retry_after`).
        """
        if not rules:
            return Admission(key_id=key.key_id, now=now)
        checks = [self._check(rule, now, estimate) for rule in rules]
        for attempt in range(len(checks) + 1):
            result = await self.counters.check_and_reserve(checks, versions[0] if versions and not attempt else None)
            if versions and not attempt and result.versions != versions[1]:
                if result.ok:
                    await self.release(
                        Admission(
                            key.key_id,
                            now,
                            rules,
                            tuple(c.name for c in checks),
                            tuple(c.amount for c in checks),
                            epochs=list(result.epochs),
                        )
                    )
                raise StaleConfig()
            if not result.missing:
                break
            await self._seed(rules[result.failed], checks[result.failed], now)
        if not result.ok:
            raise self._exceeded(rules[result.failed], result.value, checks[result.failed].amount, now)
        if key.status == ApiKeyStatus.SUSPENDED and key.suspended_reason == SuspendedReason.TOKEN_QUOTA:
            self._run(self._reactivate(key.key_id))
        admission = Admission(
            key_id=key.key_id,
            now=now,
            rules=rules,
            names=tuple(c.name for c in checks),
            reserved=tuple(c.amount for c in checks),
            values=result.values,
            epochs=list(result.epochs),
        )
        for index, (name, epoch) in enumerate(zip(admission.names, admission.epochs, strict=True)):
            holds = self._holds.get(name)
            if holds and any(held.epochs[i] != epoch for held, i in holds.values()):
                await self._adopt(name, epoch)
            if admission.reserved[index]:
                self._holds.setdefault(name, {})[id(admission)] = (admission, index)
        return admission

    async def _adopt(self, name: str, epoch: str) -> None:
        """Counter `name` is now in `epoch` (rebuilt after Redis lost it): add the reservations
        this process still has in flight on it from older epochs (SPEC §3: a rebuilt counter holds
        what is reserved), and note that `epoch` holds them."""
        if not epoch:
            return
        stale = [(held, i) for held, i in self._holds.get(name, {}).values() if held.epochs[i] != epoch]
        amount = sum(held.reserved[i] for held, i in stale)
        for held, i in stale:
            held.epochs[i] = epoch  # before the await: a concurrent adoption must not add them twice
        if amount and await self.counters.adopt(name, epoch, amount):
            log.warning("a rebuilt counter %s took %d in-flight reservation(s) of this process", name, len(stale))

    async def usage_of(self, rules: tuple[LimitRule, ...], now: datetime) -> list[int]:
        """What each rule's counter holds in the window of `now` (seeding missing ones), in
        counter units; for GET /v1/key and GET /v1/quotas."""
        checks = [self._check(rule, now, Estimate()) for rule in rules]
        values = await self.counters.read([c.name for c in checks]) if checks else []
        out = []
        for rule, check, value in zip(rules, checks, values, strict=True):
            if value is None and check.seedable:
                await self._seed(rule, check, now)
                (value,) = await self.counters.read([check.name])
            out.append(value or 0)
        return out

    def _drop_holds(self, admission: Admission) -> None:
        for name in admission.names:
            holds = self._holds.get(name)
            if holds is not None:
                holds.pop(id(admission), None)
                if not holds:
                    del self._holds[name]

    async def release(self, admission: Admission) -> None:
        """Give back everything `admission` reserved, its RPM request included, from the counter
        epochs that took it, as if it had never been admitted: for a request that is not sent
        (admitted under config that had changed, and taken again under the new one). Redis
        unreachable: logged; the counters then hold too much, never too little."""
        items = [
            Settle(name, epoch, -reserved, 0)
            for name, reserved, epoch in zip(admission.names, admission.reserved, admission.epochs, strict=True)
            if reserved
        ]
        if not items:
            return
        try:
            await self.counters.settle(items)
        except REDIS_ERRORS as exc:
            log.warning("giving back %s in Redis failed: %s", admission.names, exc)

    async def settle(self, admission: Admission, usage: TokenUsage, cost_usd: Decimal) -> list[Written]:
        """Replace the reservations with the real `usage` and `cost_usd`; a failed request
        (zero usage) releases them. A reservation is subtracted only from the counter epoch that
        holds it; a counter rebuilt since gets the real usage alone; a token-quota or spend counter
        that is missing is seeded first (its usage event is not in the database yet: it is written
        after this settle). A token quota that is now reached suspends its keys.

        Returns, per token-quota and spend counter, what `after_write` needs once the usage event
        is stored (generation -1 until then). Redis unreachable: logged, and returned as not
        settled (`settled_in` ""): a counter rebuilt since reads the event or gets it from
        `after_write`; one that survived keeps the reservation. Never raises for Redis."""
        if not admission.rules:
            return []
        self._drop_holds(admission)
        items: list[tuple[int, Settle]] = []
        written: dict[int, Written] = {}
        for index, (rule, name, reserved) in enumerate(
            zip(admission.rules, admission.names, admission.reserved, strict=True)
        ):
            if rule.kind == "rpm":
                continue
            actual = usd_to_units(cost_usd) if rule.kind == "spend" else usage.total_tokens
            epoch = admission.epochs[index] if index < len(admission.epochs) else ""
            if rule.kind in ("tokens", "spend"):
                written[index] = Written(name, epoch, epoch, reserved, actual, -1)
            if actual != reserved or actual:
                items.append((index, Settle(name, epoch, actual - reserved, actual)))
        if not items:
            return list(written.values())
        try:
            results = await self.counters.settle([item for _, item in items])
            missing = [
                n
                for n, ((index, _), result) in enumerate(zip(items, results, strict=True))
                if result is None and index in written
            ]
            for n in missing:  # lost with Redis: seed it (this request's event is not stored yet), then settle
                rule = admission.rules[items[n][0]]
                await self._seed(rule, self._check(rule, admission.now, Estimate()), admission.now)
            if missing:
                retried = await self.counters.settle([items[n][1] for n in missing])
                for n, result in zip(missing, retried, strict=True):
                    results[n] = result
        except REDIS_ERRORS as exc:
            log.warning("settling %s in Redis failed: %s", admission.names, exc)
            return [dataclasses.replace(w, settled_in="") for w in written.values()]
        for (index, _), result in zip(items, results, strict=True):
            rule = admission.rules[index]
            epoch = "" if result is None else result[1]
            if index in written:
                written[index] = dataclasses.replace(written[index], settled_in=epoch)
            if rule.kind == "tokens" and result is not None and result[0] >= rule.limit:
                self._suspend(rule)
        return list(written.values())

    async def after_write(self, settled: Sequence[tuple[Sequence[Written | dict], int]]) -> None:
        """Called once usage events are stored: per event the `settle` result (or, for an
        `interrupted` event, its intent's counters as dicts of `Written` fields) and the
        usage-write generation of the transaction that stored it. Counts in every rebuilt counter
        the events its seed did not read, and settles interrupted ones (`Counters.after_write`).
        Redis unreachable: logged; a counter rebuilt later reads these events from the database."""
        items = [
            dataclasses.replace(Written(**w) if isinstance(w, dict) else w, generation=generation)
            for written, generation in settled
            for w in written
        ]
        if not items:
            return
        try:
            added = await self.counters.after_write(items)
        except REDIS_ERRORS as exc:
            log.warning("counting %d stored usage event(s) in rebuilt counters failed: %s", len(items), exc)
            return
        if added:
            log.warning("%d counter(s) counted usage events stored after they were rebuilt", added)

    async def _seed(self, rule: LimitRule, check: CounterCheck, now: datetime) -> None:
        since = window_start(rule.period, now)
        if self.counters.durable:
            used = await sync_to_async(used_in_window, thread_sensitive=True)(
                level=rule.level, entity_id=rule.entity_id, since=since
            )
            generation = 0
        else:
            used, generation = await sync_to_async(used_for_seed, thread_sensitive=True)(
                level=rule.level, entity_id=rule.entity_id, since=since
            )
        value = usd_to_units(used.usd) if rule.kind == "spend" else used.tokens
        epoch = await self.counters.seed_counter(check.name, value, check.ttl_seconds, generation)
        if self._holds.get(check.name):
            await self._adopt(check.name, epoch)

    def _exceeded(self, rule: LimitRule, value: int, amount: int, now: datetime) -> LimitExceeded:
        """The refusal of `rule`, whose counter holds `value` and which could not take `amount`
        more (counter units). A hard limit that is not used up refuses a request whose bound does
        not fit in what remains, and says so."""
        where = f"this {LEVEL_LABELS[rule.level]}"
        window = _WINDOW_WORDS.get(rule.period, "")
        if rule.kind == "tokens":
            if value >= rule.limit:
                self._suspend(rule)
                used_up = f"The token quota of {where} is used up: {value:,} of {rule.limit:,} tokens{window}."
                return LimitExceeded(
                    rule=rule,
                    code="token_quota_exceeded",
                    type="insufficient_quota",
                    message=f"{used_up} Ask an admin to raise the quota.",
                )
            return LimitExceeded(
                rule=rule,
                code="token_quota_exceeded",
                type="insufficient_quota",
                message=(
                    f"The hard token quota of {where} has {rule.limit - value:,} of {rule.limit:,} tokens left"
                    f"{window}, and this request could use up to {amount:,} (its bound: every byte of the prompt "
                    "as a token, plus max_tokens). Hard mode refuses what could pass the quota: send a smaller "
                    "prompt or max_tokens, or ask an admin to raise the quota."
                ),
            )
        if rule.kind == "spend":
            spent, limit = units_to_usd(value).normalize(), units_to_usd(rule.limit).normalize()
            if value >= rule.limit:
                return LimitExceeded(
                    rule=rule,
                    code="budget_exceeded",
                    type="insufficient_quota",
                    message=f"The spend budget of {where} is used up: ${spent:f} of ${limit:f}{window}.",
                )
            left, worst = units_to_usd(rule.limit - value).normalize(), units_to_usd(amount).normalize()
            return LimitExceeded(
                rule=rule,
                code="budget_exceeded",
                type="insufficient_quota",
                message=(
                    f"The hard spend budget of {where} has ${left:f} of ${limit:f} left{window}, and this "
                    f"request could cost up to ${worst:f} (its bound: every byte of the prompt as a token, "
                    "plus max_tokens, at the model's prices). Hard mode refuses what could pass the budget: "
                    "send a smaller prompt or max_tokens, or ask an admin to raise the budget."
                ),
            )
        word = "requests" if rule.kind == "rpm" else "tokens"
        return LimitExceeded(
            rule=rule,
            code="rate_limit_exceeded",
            type=word,
            message=(
                f"Rate limit reached for {where}: {rule.limit:,} {word} per minute "
                f"(used {value:,}). Try again in {seconds_to_next_minute(now)}s."
            ),
            retry_after=seconds_to_next_minute(now),
        )

    def _suspend(self, rule: LimitRule) -> None:
        """Mark the keys under a reached token quota suspended (once per owner every few seconds,
        however many requests are rejected meanwhile)."""
        owner = (rule.level, rule.entity_id)
        moment = time.monotonic()
        if moment - self._suspended_at.get(owner, -SUSPEND_EVERY_SECONDS) < SUSPEND_EVERY_SECONDS:
            return
        self._suspended_at[owner] = moment

        def suspend() -> None:
            field: dict[str, str] = {
                Level.API_KEY: "pk",
                Level.GATEWAY: "gateway_id",
                Level.RESOURCE_GROUP: "gateway__resource_group_id",
            }
            ids = list(ApiKey.objects.filter(**{field[rule.level]: rule.entity_id}).values_list("pk", flat=True))
            api_keys_suspend_for_token_quota(api_key_ids=ids)

        self._run(sync_to_async(suspend, thread_sensitive=True)())

    async def _reactivate(self, key_id: int) -> None:
        await sync_to_async(api_key_reactivate_after_token_quota, thread_sensitive=True)(api_key_id=key_id)

    def _run(self, coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("limit bookkeeping failed", exc_info=task.exception())
