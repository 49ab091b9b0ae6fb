"""Reads of usage events for the console and the API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Count, Q, QuerySet, Sum

from usage.models import UsageEvent


def usage_events_latest(*, gateway, limit: int = 50) -> QuerySet[UsageEvent]:
    """The latest `limit` usage events of `gateway`, newest first."""
    return UsageEvent.objects.filter(gateway=gateway).order_by("-created_at", "-id")[:limit]


def tokens_used(*, gateway, since: datetime) -> int:
    """Total tokens (every type) used through `gateway` since `since` (aware UTC)."""
    total = UsageEvent.objects.filter(gateway=gateway, created_at__gte=since).aggregate(t=Sum("total_tokens"))["t"]
    return int(total or 0)


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """Requests, tokens by type and cost (USD, Decimal) of a set of usage events.

    Token fields follow `UsageEvent`: cached input and cache writes are parts of input, reasoning
    is part of output, `total_tokens` = input + output."""

    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    total_tokens: int = 0
    cost_usd: Decimal = Decimal(0)

    @property
    def error_rate(self) -> Decimal:
        """Share of requests that failed (status ≥ 400), 0 to 100 percent, one decimal place."""
        if not self.requests:
            return Decimal(0)
        return (Decimal(100) * self.errors / self.requests).quantize(Decimal("0.1"))


@dataclass(frozen=True, slots=True)
class UsageSummary:
    """A gateway's usage since a UTC instant: totals and the models it served, by cost."""

    since: datetime
    totals: UsageTotals
    by_model: list[tuple[str, UsageTotals]]  # (model asked for, its totals), costliest first


_TOKEN_FIELDS = (
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "total_tokens",
)


def _totals_of(row: dict) -> UsageTotals:
    return UsageTotals(
        requests=row["requests"],
        errors=row["errors"],
        cost_usd=row["cost_usd"] or Decimal(0),
        **{name: row[name] or 0 for name in _TOKEN_FIELDS},
    )


def usage_summary(*, gateway, since: datetime, top: int = 10) -> UsageSummary:
    """Totals of `gateway`'s usage events since `since` (aware UTC) and its `top` models by cost,
    in two grouped queries (no rows are loaded)."""
    sums = {
        "requests": Count("id"),
        "errors": Count("id", filter=Q(status_code__gte=400)),
        "cost_usd": Sum("cost_usd"),
        **{name: Sum(name) for name in _TOKEN_FIELDS},
    }
    events = UsageEvent.objects.filter(gateway=gateway, created_at__gte=since)
    totals = _totals_of(events.aggregate(**sums))
    rows = events.values("model_requested").annotate(**sums).order_by("-cost_usd", "-total_tokens", "model_requested")
    by_model = [(row["model_requested"], _totals_of(row)) for row in rows[:top]]
    return UsageSummary(since=since, totals=totals, by_model=by_model)
