"""Reads for limits: what an owner used in a window, from the usage events (the system of record)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Sum

from quotas.models import Level

LEVEL_FIELDS: dict[str, str] = {
    Level.API_KEY: "api_key_id",
    Level.GATEWAY: "gateway_id",
    Level.RESOURCE_GROUP: "resource_group_id",
}


@dataclass(frozen=True, slots=True)
class Used:
    """Tokens (every type) and cost (USD) used in a window."""

    tokens: int
    usd: Decimal


def used_in_window(*, level: str, entity_id: int, since: datetime, until: datetime | None = None) -> Used:
    """Usage of one key, gateway or group from `since` (inclusive) to `until` (exclusive, None
    for now), both aware UTC, summed from the usage events."""
    from usage.models import UsageEvent

    events = UsageEvent.objects.filter(**{LEVEL_FIELDS[level]: entity_id, "created_at__gte": since})
    if until is not None:
        events = events.filter(created_at__lt=until)
    totals = events.aggregate(tokens=Sum("total_tokens"), usd=Sum("cost_usd"))
    return Used(tokens=int(totals["tokens"] or 0), usd=Decimal(totals["usd"] or 0).quantize(Decimal("0.0000000001")))
