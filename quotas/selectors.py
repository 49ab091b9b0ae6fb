"""Reads for limits: what an owner used in a window, from the usage events (the system of record).

These are the limit engine's and the period jobs' reads as much as the pages': they take the
owner a caller already read through the policy (`restrict(user, action)`), and sum its usage
events whatever the caller's role, because a limit's state (used, remaining) is part of it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.db.models import Sum

from gateway.models import Gateway
from quotas.models import Level, LimitOwner
from quotas.periods import window_start
from usage.models import UsageEvent
from usage.rollups import next_write_generation

LEVEL_FIELDS: dict[str, str] = {
    Level.API_KEY: "api_key_id",
    Level.GATEWAY: "gateway_id",
    Level.RESOURCE_GROUP: "resource_group_id",
}


@dataclass(frozen=True, slots=True)
class Used:
    """Tokens (every type), cost (USD) and requests (usage events, refusals included) in a window."""

    tokens: int
    usd: Decimal
    requests: int = 0


def used_in_window(*, level: str, entity_id: int, since: datetime, until: datetime | None = None) -> Used:
    """Usage of one key, gateway or group from `since` (inclusive) to `until` (exclusive, None
    for now), both aware UTC, summed from the usage events."""
    events = UsageEvent.objects.filter(**{LEVEL_FIELDS[level]: entity_id, "created_at__gte": since})
    if until is not None:
        events = events.filter(created_at__lt=until)
    totals = events.aggregate(tokens=Sum("total_tokens"), usd=Sum("cost_usd"), requests=Sum("requests"))
    return Used(
        tokens=int(totals["tokens"] or 0),
        usd=Decimal(totals["usd"] or 0).quantize(Decimal("0.0000000001")),
        requests=int(totals["requests"] or 0),
    )


def used_for_seed(*, level: str, entity_id: int, since: datetime) -> tuple[Used, int]:
    """`used_in_window` for seeding a shared counter, with the usage-write generation it was read
    at: in one transaction, the generation is advanced first (waiting for usage writes that are
    committing, `usage.rollups.next_write_generation`), then the events are summed. An event
    stored at a generation below the one returned is in the sum; one stored at or above it is not
    (`quotas.counters.RedisCounters.after_write` adds it)."""
    with transaction.atomic():
        generation = next_write_generation()
        used = used_in_window(level=level, entity_id=entity_id, since=since)
    return used, generation


def spend_by_api_key(*, budgets, now: datetime) -> dict[int, Decimal]:
    """The cost (USD) of each API key in the current window of its budget: one query per
    distinct refresh period, whatever the number of keys. `budgets` are API-key SpendBudgets."""
    spent: dict[int, Decimal] = {}
    by_period: dict[str, list[int]] = {}
    for budget in budgets:
        by_period.setdefault(budget.refresh_period, []).append(budget.api_key_id)
    for period, key_ids in by_period.items():
        rows = (
            UsageEvent.objects.filter(api_key_id__in=key_ids, created_at__gte=window_start(period, now))
            .values("api_key_id")
            .annotate(usd=Sum("cost_usd"))
        )
        for row in rows:
            spent[row["api_key_id"]] = Decimal(row["usd"] or 0)
    return {key_id: spent.get(key_id, Decimal(0)) for ids in by_period.values() for key_id in ids}


def group_of_limit(limit: LimitOwner) -> int | None:
    """The id of the resource group whose keys a token quota, spend budget or rate limit
    governs: its own group, its gateway's, or its API key's gateway's (None if that is gone)."""
    if limit.resource_group_id is not None:
        return limit.resource_group_id
    gateways = Gateway.objects.all()
    if limit.gateway_id is not None:
        return gateways.filter(pk=limit.gateway_id).values_list("resource_group_id", flat=True).first()
    return gateways.filter(api_keys__pk=limit.api_key_id).values_list("resource_group_id", flat=True).first()
