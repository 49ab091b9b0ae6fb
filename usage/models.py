"""Usage events: one metered request each (SPEC §7)."""

from __future__ import annotations

from django.db import models

from core.permissions import RestrictedManager


class UsageEvent(models.Model):
    """One request through the data plane: who, what, when, tokens by type, cost, latency.

    Token fields follow OpenAI's convention and never double count: `input_tokens` is every
    prompt token, of which `cached_input_tokens` were read from cache and `cache_write_tokens`
    written to it; `output_tokens` includes `reasoning_tokens`; `total_tokens` is input + output.
    `cost_usd` is computed with the model's prices in force at the time of the request.
    Model and provider are kept as names (as they were then), not as foreign keys.
    """

    request_id = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(db_index=True)
    # Null only for a refusal that no API key could be found for (a missing or unknown key):
    # such an event belongs to no group, so platform admins alone read it (`core.permissions`).
    resource_group = models.ForeignKey(
        "gateway.ResourceGroup", on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    gateway = models.ForeignKey(
        "gateway.Gateway", on_delete=models.PROTECT, related_name="usage_events", null=True, blank=True
    )
    api_key = models.ForeignKey(
        "keys.ApiKey", on_delete=models.PROTECT, related_name="usage_events", null=True, blank=True
    )
    api_key_name = models.CharField(max_length=100, blank=True)
    endpoint = models.CharField(max_length=64, default="chat.completions")
    model_requested = models.CharField(max_length=200, blank=True)
    provider = models.CharField(max_length=100, blank=True)
    model_served = models.CharField(max_length=200, blank=True)
    stream = models.BooleanField(default=False)
    status_code = models.PositiveSmallIntegerField()
    error_code = models.CharField(max_length=64, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    cached_input_tokens = models.PositiveIntegerField(default=0)
    cache_write_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    reasoning_tokens = models.PositiveIntegerField(default=0)
    total_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=20, decimal_places=10, default=0)
    latency_ms = models.PositiveIntegerField(default=0)
    time_to_first_token_ms = models.PositiveIntegerField(null=True, blank=True)
    upstream_request_id = models.CharField(max_length=200, blank=True)
    client_disconnected = models.BooleanField(default=False)
    # How many requests this event stands for: 1, or, for the aggregate row of a refusal flood,
    # every refusal of one key (or client address) and error code in one UTC minute past the
    # first AIGW_REFUSAL_EVENTS_PER_MINUTE (`usage.refusals`). Counts of requests sum this.
    requests = models.PositiveIntegerField(default=1)
    client_address = models.CharField(max_length=64, blank=True)  # the caller's IP, kept for refusals

    objects = RestrictedManager()
    policy_group_paths = ("resource_group_id",)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["gateway", "-created_at"], name="usage_gateway_time"),
            models.Index(fields=["api_key", "-created_at"], name="usage_key_time"),
            models.Index(fields=["resource_group", "-created_at"], name="usage_group_time"),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.model_requested} {self.status_code}"

    @property
    def succeeded(self) -> bool:
        return 200 <= self.status_code < 300


# The token counters of a usage event and of a rollup, in the order the console shows them.
TOKEN_FIELDS = (
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "total_tokens",
)

# Latency histogram of the rollups: bucket i counts requests with latency_ms in
# [LATENCY_BOUNDS_MS[i-1], LATENCY_BOUNDS_MS[i]) (from 0 for the first); the last bucket counts
# everything at or above the last bound. Percentiles are read from it (usage.rollups).
LATENCY_BOUNDS_MS = (10, 25, 50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 7500, 10_000, 20_000, 60_000)
LATENCY_FIELDS = tuple(f"latency_lt_{bound}" for bound in LATENCY_BOUNDS_MS) + ("latency_ge_max",)


class _RollupCounters(models.Model):
    """What a rollup row adds up for one API key and model asked (see `UsageRollup`)."""

    # Null for the refusals of missing or unknown API keys (see `UsageEvent`).
    resource_group = models.ForeignKey(
        "gateway.ResourceGroup", on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    gateway = models.ForeignKey("gateway.Gateway", on_delete=models.PROTECT, related_name="+", null=True, blank=True)
    api_key = models.ForeignKey("keys.ApiKey", on_delete=models.PROTECT, related_name="+", null=True, blank=True)
    model_requested = models.CharField(max_length=200, blank=True)
    requests = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)  # status code 400 or above
    input_tokens = models.BigIntegerField(default=0)
    cached_input_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    total_tokens = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=24, decimal_places=10, default=0)
    latency_ms_sum = models.BigIntegerField(default=0)

    objects = RestrictedManager()
    policy_group_paths = ("resource_group_id",)

    class Meta:
        abstract = True


class UsageRollup(_RollupCounters):
    """The usage events of one UTC hour of one API key and model asked, added up (SPEC §7).

    Maintained by `usage.rollups.rollup_dirty_hours`; read together with the raw events of the
    hours it has not caught up with (`usage.rollups.usage_series`), so readers never wait for it.
    Kept when raw events are purged. Token fields have `UsageEvent`'s meaning; `cost_usd` is the
    exact sum (USD, Decimal); latency is kept as a sum (ms) and a histogram (`LATENCY_FIELDS`).
    """

    hour = models.DateTimeField()  # UTC, the start of the hour

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["hour", "api_key", "model_requested"], name="usage_rollup_unique"),
        ]
        indexes = [
            models.Index(fields=["gateway", "hour"], name="rollup_gateway_hour"),
            models.Index(fields=["api_key", "hour"], name="rollup_key_hour"),
            models.Index(fields=["resource_group", "hour"], name="rollup_group_hour"),
            models.Index(fields=["hour"], name="rollup_hour"),
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}:00 key {self.api_key_id} {self.model_requested}: {self.requests}"


class UsageRollupDay(_RollupCounters):
    """The `UsageRollup` rows of one UTC day added up: rewritten in the same transaction as any
    of its hours, so it always equals the sum of that day's hourly rows. Long ranges read it for
    the days whose hours are all rolled up."""

    day = models.DateTimeField()  # UTC, 00:00 of the day

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "api_key", "model_requested"], name="usage_rollup_day_unique"),
        ]
        indexes = [
            models.Index(fields=["gateway", "day"], name="rollup_day_gateway"),
            models.Index(fields=["api_key", "day"], name="rollup_day_key"),
            models.Index(fields=["resource_group", "day"], name="rollup_day_group"),
            models.Index(fields=["day"], name="rollup_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day:%Y-%m-%d} key {self.api_key_id} {self.model_requested}: {self.requests}"


for _name in LATENCY_FIELDS:
    UsageRollup.add_to_class(_name, models.PositiveIntegerField(default=0))
    UsageRollupDay.add_to_class(_name, models.PositiveIntegerField(default=0))


class UsageRollupDirtyHour(models.Model):
    """A UTC hour whose rollups are behind its raw events: written in the same transaction as the
    events (`usage.recorder`), removed by the rollup job once the hour is recomputed, unless new
    events changed `token` meanwhile."""

    hour = models.DateTimeField(primary_key=True)
    token = models.CharField(max_length=32)

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}:00 ({self.token})"


class UsageRetention(models.Model):
    """The one row that says up to when raw usage events were purged (`purged_before`, UTC, an
    hour start). Rollups of hours before it are final and only ever added to."""

    purged_before = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"raw usage events purged before {self.purged_before}"


class UsageWriteGate(models.Model):
    """The one row (pk 1) that orders usage writes against the seeds of shared counters.

    Every transaction that stores usage events reads `generation` (under a share lock on
    PostgreSQL) after its inserts; a counter seed advances it (an update: it waits for those
    transactions) before it sums the events. So an event stored at a generation below a seed's
    was in that seed's sum, and one stored at or above it was not (SPEC §3: a counter rebuilt
    after a Redis restart holds exactly what was spent; `quotas.counters`)."""

    generation = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"usage write generation {self.generation}"
