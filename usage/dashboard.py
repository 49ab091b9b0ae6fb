"""What the usage dashboard shows (SPEC §7): a scope (everything the user may see, a resource
group, a gateway or an API key), a UTC time range, and from them the series, totals, top models
and keys, latency percentiles, and the budget burn with its forecast. Reads go through
`usage.rollups.usage_series`, so a 90-day range reads hourly rollups, never millions of events.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.core.exceptions import ObjectDoesNotExist

from core.permissions import Action, gateways_for, groups_for, require
from gateway.models import Gateway, ResourceGroup
from keys.models import ApiKey
from quotas.models import LimitPeriod, RefreshPeriod, SpendBudget
from quotas.periods import window_end, window_start
from quotas.selectors import used_in_window
from usage.rollups import HOUR, UsagePoint, hour_floor, latency_percentile, usage_series
from usage.selectors import require_anywhere

RANGES = {"24h": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days", "90d": "Last 90 days"}
DEFAULT_RANGE = "7d"
MAX_CUSTOM_DAYS = 400


@dataclass(frozen=True)
class Scope:
    """What a dashboard covers: everything the user may see (all None) or one group, gateway
    or API key (the narrowest one set), with the filters `usage_series` takes for it."""

    resource_group: ResourceGroup | None = None
    gateway: Gateway | None = None
    api_key: ApiKey | None = None

    @property
    def filters(self) -> dict[str, int]:
        if self.api_key is not None:
            return {"api_key": self.api_key.pk}
        if self.gateway is not None:
            return {"gateway": self.gateway.pk}
        if self.resource_group is not None:
            return {"resource_group": self.resource_group.pk}
        return {}

    @property
    def title(self) -> str:
        if self.api_key is not None:
            return f"API key {self.api_key.name}"
        if self.gateway is not None:
            return f"Gateway {self.gateway.name}"
        if self.resource_group is not None:
            return f"Resource group {self.resource_group.name}"
        return "All your resource groups"


def scope_for(user, params) -> Scope:
    """The scope named by `params` (`api_key`, `gateway` or `group`: ids) whose usage `user`
    may read; no scope: everything the user may read.

    Raises:
        ObjectDoesNotExist: for an id that is malformed, unknown, or of a group whose settings
            the user does not see (the view answers 404, never confirming it exists).
        core.errors.PermissionDenied: for a scope the user sees but whose usage their role
            may not read (a viewer's group), and for no scope when they may read usage in no
            group (403).
    """
    if params.get("api_key"):
        api_key = (
            ApiKey.objects.restrict(user, Action.VIEW_SETTINGS)
            .select_related("gateway__resource_group")
            .get(pk=_id(params["api_key"]), gateway__deleted_at__isnull=True)
        )
        group = api_key.gateway.resource_group
        scope = Scope(group, api_key.gateway, api_key)
    elif params.get("gateway"):
        visible = gateways_for(user, Action.VIEW_SETTINGS).select_related("resource_group")
        gateway = visible.get(pk=_id(params["gateway"]))
        group = gateway.resource_group
        scope = Scope(group, gateway)
    elif params.get("group"):
        group = groups_for(user, Action.VIEW_SETTINGS).get(pk=_id(params["group"]))
        scope = Scope(group)
    else:
        require_anywhere(user, Action.VIEW_USAGE)
        return Scope()
    require(user, Action.VIEW_USAGE, group)
    return scope


def _id(raw: str) -> int:
    if not raw.isascii() or not raw.isdigit():
        raise ObjectDoesNotExist(raw)
    return int(raw)


@dataclass(frozen=True)
class TimeRange:
    """[since, until) in UTC with the bucket size the charts use (`hour` up to 2 days, else `day`)."""

    since: datetime
    until: datetime
    bucket: str
    key: str  # one of RANGES, or "custom"
    error: str = ""

    def starts(self) -> list[datetime]:
        """Every bucket start in the range, so quiet buckets show as zero on the charts."""
        step = HOUR if self.bucket == "hour" else timedelta(days=1)
        start = hour_floor(self.since)
        if self.bucket == "day":
            start = start.replace(hour=0)
        starts = []
        while start < self.until:
            starts.append(start)
            start += step
        return starts


def time_range_for(params, now: datetime) -> TimeRange:
    """The range in `params`: `range` (a key of RANGES, default 7d) or `since`/`until` dates
    (YYYY-MM-DD, UTC, both days included, at most 400 days). A bad custom range falls back to
    the default with `error` saying why."""
    since_raw, until_raw = params.get("since", ""), params.get("until", "")
    if since_raw or until_raw:
        try:
            first = date.fromisoformat(since_raw)
            last = date.fromisoformat(until_raw) if until_raw else now.date()
        except ValueError:
            return _preset(DEFAULT_RANGE, now, error="Enter dates as YYYY-MM-DD.")
        if last < first:
            return _preset(DEFAULT_RANGE, now, error="The end date is before the start date.")
        if (last - first).days > MAX_CUSTOM_DAYS:
            return _preset(DEFAULT_RANGE, now, error=f"A range is at most {MAX_CUSTOM_DAYS} days.")
        since = datetime.combine(first, time(), tzinfo=UTC)
        until = datetime.combine(last + timedelta(days=1), time(), tzinfo=UTC)
        bucket = "hour" if until - since <= timedelta(days=2) else "day"
        return TimeRange(since, until, bucket, "custom")
    key = params.get("range", DEFAULT_RANGE)
    return _preset(key if key in RANGES else DEFAULT_RANGE, now)


def _preset(key: str, now: datetime, error: str = "") -> TimeRange:
    # Presets end with the current hour or day, so they always hold 24 hours or N days.
    if key == "24h":
        return TimeRange(hour_floor(now) - timedelta(hours=23), hour_floor(now) + HOUR, "hour", key, error)
    days = int(key.rstrip("d"))
    start_of_today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return TimeRange(start_of_today - timedelta(days=days - 1), start_of_today + timedelta(days=1), "day", key, error)


@dataclass
class Ranked:
    """One row of a top-N table: a model name or an API key, with its totals."""

    label: str
    point: UsagePoint
    api_key_id: int | None = None


@dataclass(frozen=True)
class BudgetBurn:
    """A spend budget's current window: spent (USD) of limit (USD), the burn rate (USD per day)
    and the UTC moment the budget runs out at that rate (None when it does not within the
    window, or nothing was spent yet)."""

    budget: SpendBudget
    window_start: datetime
    window_end: datetime | None
    spent: Decimal
    per_day: Decimal
    runs_out_at: datetime | None
    reached: bool
    history: list[LimitPeriod]

    @property
    def percent(self) -> int:
        return min(100, int(100 * self.spent / self.budget.limit_usd)) if self.budget.limit_usd else 100


def forecast_runs_out(*, spent: Decimal, limit: Decimal, since: datetime, now: datetime) -> datetime | None:
    """When a budget of `limit` USD, with `spent` USD since `since`, runs out if spending goes on
    at its average rate so far (linear forecast); None without spending. A budget already
    reached gives `now`."""
    if spent >= limit:
        return now
    elapsed = (now - since).total_seconds()
    if spent <= 0 or elapsed <= 0:
        return None
    seconds_left = (limit - spent) * Decimal(elapsed) / spent
    return now + timedelta(seconds=float(seconds_left))


def budget_burn(user, scope: Scope, now: datetime) -> BudgetBurn | None:
    """The enforced spend budget of the scope's API key, gateway or resource group (the
    narrowest), as `user` may see it, with its current window and closed periods (newest first,
    at most 12)."""
    owner: dict[str, Any]
    if scope.api_key is not None:
        owner = {"api_key": scope.api_key}
    elif scope.gateway is not None:
        owner = {"gateway": scope.gateway}
    elif scope.resource_group is not None:
        owner = {"resource_group": scope.resource_group}
    else:
        return None
    budget = (
        SpendBudget.objects.restrict(user, Action.VIEW_SETTINGS)
        .filter(**owner, active=True, archived_at__isnull=True)
        .first()
    )
    if budget is None:
        return None
    start = window_start(budget.refresh_period, now)
    if budget.refresh_period == RefreshPeriod.NONE:
        start = budget.created_at
    end = window_end(budget.refresh_period, now)
    spent = used_in_window(level=budget.level, entity_id=budget.entity_id, since=start).usd
    elapsed_days = Decimal((now - start).total_seconds()) / Decimal(86400)
    per_day = (spent / elapsed_days).quantize(Decimal("0.0001")) if elapsed_days > 0 else Decimal(0)
    runs_out = forecast_runs_out(spent=spent, limit=budget.limit_usd, since=start, now=now)
    if runs_out is not None and end is not None and runs_out >= end:
        runs_out = None
    # policy: the closed periods of the budget read through `restrict` above (no group of their own)
    periods = LimitPeriod.objects.filter(level=budget.level, entity_id=budget.entity_id, closed=True)
    history = list(periods.order_by("-window_start")[:12])
    return BudgetBurn(budget, start, end, spent, per_day, runs_out, spent >= budget.limit_usd, history)


@dataclass
class Dashboard:
    """Everything the dashboard page draws for one scope and range."""

    scope: Scope
    time_range: TimeRange
    totals: UsagePoint
    series: list[UsagePoint]
    top_models: list[Ranked]
    top_keys: list[Ranked]
    burn: BudgetBurn | None
    charts: dict[str, Any] = field(default_factory=dict)

    @property
    def latency_p50(self) -> int | None:
        return latency_percentile(self.totals.latency_histogram, 0.5)

    @property
    def latency_p95(self) -> int | None:
        return latency_percentile(self.totals.latency_histogram, 0.95)


def _top(points, top: int) -> list[UsagePoint]:
    return sorted(points, key=lambda p: (-p.cost_usd, -p.total_tokens, str(p.key)))[:top]


def _add(total: UsagePoint, point: UsagePoint) -> None:
    for name in (
        "requests",
        "errors",
        "input_tokens",
        "cached_input_tokens",
        "cache_write_tokens",
        "output_tokens",
        "reasoning_tokens",
        "total_tokens",
        "cost_usd",
        "latency_ms_sum",
    ):
        setattr(total, name, getattr(total, name) + getattr(point, name))
    total.latency_histogram = [a + b for a, b in zip(total.latency_histogram, point.latency_histogram, strict=True)]


def dashboard_for(user, scope: Scope, time_range: TimeRange, now: datetime, top: int = 8) -> Dashboard:
    """The dashboard of `scope` over `time_range` as `user` may see it: per-bucket series (every
    bucket, zeros included), totals, the top `top` models and API keys by cost, and the budget
    burn of the scope's own spend budget."""
    common: dict[str, Any] = {
        "since": time_range.since,
        "until": time_range.until,
        "filters": scope.filters,
        "user": user,
    }
    by_start = {point.start: point for point in usage_series(bucket=time_range.bucket, **common)}
    series = [by_start.get(start) or UsagePoint(start=start) for start in time_range.starts()]
    totals = UsagePoint(start=time_range.since)
    for point in series:
        _add(totals, point)
    # One more read for both top lists: the whole range split by key and model.
    by_model: dict[Any, UsagePoint] = {}
    by_key: dict[Any, UsagePoint] = {}
    for point in usage_series(bucket="range", group_by=("api_key", "model"), **common):
        api_key_id, model = point.key
        for table, key in ((by_model, model), (by_key, api_key_id)):
            total = table.get(key)
            if total is None:
                total = table[key] = UsagePoint(start=time_range.since, key=key)
            _add(total, point)
    models = _top(by_model.values(), top)
    keys = _top(by_key.values(), top)
    names = dict(
        ApiKey.objects.restrict(user, Action.VIEW_SETTINGS)
        .filter(pk__in=[p.key for p in keys])
        .values_list("pk", "name")
    )
    board = Dashboard(
        scope=scope,
        time_range=time_range,
        totals=totals,
        series=series,
        top_models=[Ranked(str(p.key), p) for p in models],
        top_keys=[Ranked(names.get(p.key, f"#{p.key}"), p, api_key_id=p.key) for p in keys],
        burn=budget_burn(user, scope, now),
    )
    board.charts = _charts(board)
    return board


def _charts(board: Dashboard) -> dict[str, Any]:
    """The chart data as JSON-safe values (`json_script`): labels in UTC, USD as strings."""
    fmt = "%m-%d %H:00" if board.time_range.bucket == "hour" else "%Y-%m-%d"
    cumulative = Decimal(0)
    spend_total = []
    for point in board.series:
        cumulative += point.cost_usd
        spend_total.append(str(cumulative))
    by_type: defaultdict[str, list[int]] = defaultdict(list)
    for p in board.series:
        by_type["Input (not cached)"].append(p.input_tokens - p.cached_input_tokens - p.cache_write_tokens)
        by_type["Cached input"].append(p.cached_input_tokens)
        by_type["Cache writes"].append(p.cache_write_tokens)
        by_type["Output"].append(p.output_tokens - p.reasoning_tokens)
        by_type["Reasoning"].append(p.reasoning_tokens)
    return {
        "labels": [p.start.strftime(fmt) for p in board.series],
        "requests": [p.requests - p.errors for p in board.series],
        "errors": [p.errors for p in board.series],
        "tokens": dict(by_type),
        "spend": [str(p.cost_usd) for p in board.series],
        "spend_total": spend_total,
        "p50": [latency_percentile(p.latency_histogram, 0.5) for p in board.series],
        "p95": [latency_percentile(p.latency_histogram, 0.95) for p in board.series],
    }
