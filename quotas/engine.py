"""The limit engine's one question from the data plane: may this request go?

`admit` checks every limit on every level of a key (key, gateway, resource group) against the
shared counters and raises `LimitExceeded` naming the first level that is over; `settle` adds a
finished request's real usage. Windows are recognised from the clock on each request, so no job
has to run for a new day, week or month to start.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime

from asgiref.sync import sync_to_async

from gateway.pricing import TokenUsage
from gateway.proxy.registry import KeyContext, QuotaRule
from keys.models import ApiKeyStatus, SuspendedReason
from quotas.counters import Counters, counter_name
from quotas.models import RefreshPeriod
from quotas.periods import window_end, window_start

log = logging.getLogger(__name__)

_WINDOW_WORDS = {
    RefreshPeriod.NONE: "",
    RefreshPeriod.DAILY: " today (UTC)",
    RefreshPeriod.WEEKLY: " this week (UTC)",
    RefreshPeriod.MONTHLY: " this month (UTC)",
}
LEVEL_LABELS = {"api_key": "API key", "gateway": "gateway", "resource_group": "resource group"}


class LimitExceeded(Exception):
    """A limit rejects the request. `code` is the SPEC §4 error code, `level` the limit's level."""

    def __init__(self, *, code: str, level: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.level = level
        self.message = message


@dataclass(frozen=True, slots=True)
class Admission:
    """What `admit` counted against: the token counters of the request's windows."""

    key_id: int
    token_counters: tuple[tuple[QuotaRule, str], ...]


def _window_tag(refresh_period: str, now: datetime) -> str:
    if refresh_period == RefreshPeriod.NONE:
        return "life"
    return window_start(refresh_period, now).date().isoformat()


def _ttl_seconds(refresh_period: str, now: datetime) -> int | None:
    end = window_end(refresh_period, now)
    if end is None:
        return None
    return int((end - now).total_seconds()) + 86_400  # a day's grace for the period-closing job


def _used_tokens_in_db(level: str, entity_id: int, since: datetime) -> int:
    from django.db.models import Sum

    from usage.models import UsageEvent

    field = {"api_key": "api_key_id", "gateway": "gateway_id", "resource_group": "resource_group_id"}[level]
    total = UsageEvent.objects.filter(**{field: entity_id, "created_at__gte": since}).aggregate(
        total=Sum("total_tokens")
    )["total"]
    return int(total or 0)


class LimitEngine:
    """Checks and counts limits for the data plane. One per process."""

    def __init__(self, counters: Counters) -> None:
        self.counters = counters
        self._background: set[asyncio.Task] = set()

    async def admit(self, key: KeyContext, now: datetime) -> Admission:
        """Check every token quota of `key` at `now` (aware UTC).

        Raises:
            LimitExceeded: `token_quota_exceeded` when used tokens have reached a quota.
        """
        names = [
            counter_name("tokens", rule.level, rule.entity_id, _window_tag(rule.refresh_period, now))
            for rule in key.token_quotas
        ]
        pairs = tuple(zip(key.token_quotas, names, strict=True))
        if names:
            values = await self.counters.read(names)
            for (rule, name), value in zip(pairs, values, strict=True):
                if value is None:
                    value = await self._seed(rule, name, now)
                if value >= rule.limit_tokens:
                    self._suspend(key, rule)
                    raise LimitExceeded(
                        code="token_quota_exceeded",
                        level=rule.level,
                        message=(
                            f"The token quota of this {LEVEL_LABELS[rule.level]} is used up: "
                            f"{value:,} of {rule.limit_tokens:,} tokens{_WINDOW_WORDS[rule.refresh_period]}. "
                            "Ask an admin to raise the quota."
                        ),
                    )
        if key.status == ApiKeyStatus.SUSPENDED and key.suspended_reason == SuspendedReason.TOKEN_QUOTA:
            self._run(self._reactivate(key.key_id))
        return Admission(key_id=key.key_id, token_counters=pairs)

    async def settle(self, admission: Admission, usage: TokenUsage) -> None:
        """Count the real `usage` of an admitted request in every window it was admitted to."""
        if admission.token_counters and usage.total_tokens:
            await self.counters.add([name for _, name in admission.token_counters], usage.total_tokens)

    async def _seed(self, rule: QuotaRule, name: str, now: datetime) -> int:
        since = window_start(rule.refresh_period, now)
        used = await sync_to_async(_used_tokens_in_db, thread_sensitive=True)(rule.level, rule.entity_id, since)
        return await self.counters.seed(name, used, _ttl_seconds(rule.refresh_period, now))

    def _suspend(self, key: KeyContext, rule: QuotaRule) -> None:
        if key.status != ApiKeyStatus.ACTIVE:
            return
        from keys.models import ApiKey
        from quotas.services import api_keys_suspend_for_token_quota

        def suspend() -> None:
            field = {"api_key": "pk", "gateway": "gateway_id", "resource_group": "gateway__resource_group_id"}
            ids = list(ApiKey.objects.filter(**{field[rule.level]: rule.entity_id}).values_list("pk", flat=True))
            api_keys_suspend_for_token_quota(api_key_ids=ids)

        self._run(sync_to_async(suspend, thread_sensitive=True)())

    async def _reactivate(self, key_id: int) -> None:
        from quotas.services import api_key_reactivate_after_token_quota

        await sync_to_async(api_key_reactivate_after_token_quota, thread_sensitive=True)(api_key_id=key_id)

    def _run(self, coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("limit bookkeeping failed", exc_info=task.exception())
