"""Reads of usage events for the console and the API."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet, Sum

from usage.models import UsageEvent


def usage_events_latest(*, gateway, limit: int = 50) -> QuerySet[UsageEvent]:
    """The latest `limit` usage events of `gateway`, newest first."""
    return UsageEvent.objects.filter(gateway=gateway).order_by("-created_at", "-id")[:limit]


def tokens_used(*, gateway, since: datetime) -> int:
    """Total tokens (every type) used through `gateway` since `since` (aware UTC)."""
    total = UsageEvent.objects.filter(gateway=gateway, created_at__gte=since).aggregate(t=Sum("total_tokens"))["t"]
    return int(total or 0)
