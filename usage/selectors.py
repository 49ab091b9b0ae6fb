"""Reads of usage events for the console and the API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet, Sum

from usage.models import UsageEvent
from usage.rollups import UsagePoint, usage_series


def usage_events_latest(*, gateway, limit: int = 50) -> QuerySet[UsageEvent]:
    """The latest `limit` usage events of `gateway`, newest first."""
    return UsageEvent.objects.filter(gateway=gateway).order_by("-created_at", "-id")[:limit]


def tokens_used(*, gateway, since: datetime) -> int:
    """Total tokens (every type) used through `gateway` since `since` (aware UTC)."""
    total = UsageEvent.objects.filter(gateway=gateway, created_at__gte=since).aggregate(t=Sum("total_tokens"))["t"]
    return int(total or 0)


@dataclass(frozen=True, slots=True)
class UsageSummary:
    """A gateway's usage since a UTC instant: totals and the models it served, by cost."""

    since: datetime
    totals: UsagePoint
    by_model: list[tuple[str, UsagePoint]]  # (model asked for, its totals), costliest first


def usage_summary(*, gateway, since: datetime, until: datetime, top: int = 10) -> UsageSummary:
    """Totals of `gateway`'s usage in [since, until) (aware UTC) and its `top` models by cost,
    read from the hourly rollups (and the raw events they have not caught up with)."""
    filters = {"gateway": gateway.pk}
    totals = usage_series(since=since, until=until, bucket="range", filters=filters)
    models = usage_series(since=since, until=until, bucket="range", group_by="model", filters=filters)
    models.sort(key=lambda point: (-point.cost_usd, -point.total_tokens, str(point.key)))
    return UsageSummary(
        since=since,
        totals=totals[0] if totals else UsagePoint(start=since),
        by_model=[(str(point.key), point) for point in models[:top]],
    )
