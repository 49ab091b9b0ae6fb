"""Limits (SPEC §3): token quotas, spend budgets and TPM/RPM rate limits, each attachable to an
API key, a gateway (all its keys together) or a resource group (all its gateways together),
and the records of closed refresh periods."""

from __future__ import annotations

from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models

from core.permissions import RestrictedManager


class RefreshPeriod(models.TextChoices):
    """When a limit's window restarts; windows start at 00:00 UTC (SPEC §3)."""

    NONE = "none", "Never (lifetime)"
    DAILY = "daily", "Daily"
    WEEKLY = "weekly", "Weekly (Monday)"
    MONTHLY = "monthly", "Monthly (1st)"


class LimitMode(models.TextChoices):
    """`soft`: checked before each request, the request that crosses the limit completes (Vercel).
    `hard`: the worst case is reserved before forwarding, so usage never passes the limit."""

    SOFT = "soft", "Soft cap"
    HARD = "hard", "Hard limit"


class Level(models.TextChoices):
    API_KEY = "api_key", "API key"
    GATEWAY = "gateway", "Gateway"
    RESOURCE_GROUP = "resource_group", "Resource group"


def _owner_constraint(name: str) -> models.CheckConstraint:
    return models.CheckConstraint(
        condition=(
            models.Q(api_key__isnull=False, gateway__isnull=True, resource_group__isnull=True)
            | models.Q(api_key__isnull=True, gateway__isnull=False, resource_group__isnull=True)
            | models.Q(api_key__isnull=True, gateway__isnull=True, resource_group__isnull=False)
        ),
        name=name,
    )


class LimitOwner(models.Model):
    """Exactly one of `api_key`, `gateway`, `resource_group` owns a limit; each owner has at
    most one limit of each kind (one-to-one)."""

    api_key_id: int | None
    gateway_id: int | None
    resource_group_id: int | None

    objects = RestrictedManager()
    policy_group_paths = ("api_key__gateway__resource_group_id", "gateway__resource_group_id", "resource_group_id")

    class Meta:
        abstract = True

    @property
    def level(self) -> str:
        if self.api_key_id:
            return Level.API_KEY
        if self.gateway_id:
            return Level.GATEWAY
        return Level.RESOURCE_GROUP

    @property
    def entity_id(self) -> int:
        return int(self.api_key_id or self.gateway_id or self.resource_group_id or 0)


def _owner_fields(related_name: str):
    return (
        models.OneToOneField("keys.ApiKey", on_delete=models.CASCADE, null=True, blank=True, related_name=related_name),
        models.OneToOneField(
            "gateway.Gateway", on_delete=models.CASCADE, null=True, blank=True, related_name=related_name
        ),
        models.OneToOneField(
            "gateway.ResourceGroup", on_delete=models.CASCADE, null=True, blank=True, related_name=related_name
        ),
    )


class TokenQuota(LimitOwner):
    """Maximum tokens (every token type) in the window of `refresh_period` (lifetime for `none`).

    Zenlayer: when used tokens reach the quota the keys under it are suspended until the quota
    is raised above what was used, or removed.
    """

    api_key, gateway, resource_group = _owner_fields("token_quota")
    limit_tokens = models.PositiveBigIntegerField()
    refresh_period = models.CharField(max_length=16, choices=RefreshPeriod.choices, default=RefreshPeriod.NONE)
    mode = models.CharField(max_length=8, choices=LimitMode.choices, default=LimitMode.SOFT)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            _owner_constraint("token_quota_exactly_one_owner"),
            models.CheckConstraint(condition=models.Q(limit_tokens__gt=0), name="token_quota_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.limit_tokens:,} tokens ({self.refresh_period})"


class SpendBudget(LimitOwner):
    """A limit in USD on cost per window of `refresh_period` (Vercel's API key budgets).

    `active` False keeps the budget but does not enforce it. Removing a budget archives it
    (`archived_at` set): the owner is unlimited again, and the budget can be restored.
    """

    api_key, gateway, resource_group = _owner_fields("spend_budget")
    limit_usd = models.DecimalField(max_digits=14, decimal_places=4, validators=[MinValueValidator(Decimal(1))])
    refresh_period = models.CharField(max_length=16, choices=RefreshPeriod.choices, default=RefreshPeriod.NONE)
    mode = models.CharField(max_length=8, choices=LimitMode.choices, default=LimitMode.SOFT)
    active = models.BooleanField(default=True)
    archived_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            _owner_constraint("spend_budget_exactly_one_owner"),
            models.CheckConstraint(condition=models.Q(limit_usd__gte=1), name="spend_budget_at_least_one_usd"),
        ]

    def __str__(self) -> str:
        return f"${self.limit_usd} ({self.refresh_period})"

    @property
    def enforced(self) -> bool:
        return self.active and self.archived_at is None


class RateLimit(LimitOwner):
    """Tokens per minute and requests per minute (Azure's `llm-token-limit`); either may be None.

    Windows are the UTC minutes. Prompt tokens are estimated before forwarding and corrected
    with the real usage after.
    """

    api_key, gateway, resource_group = _owner_fields("rate_limit")
    tokens_per_minute = models.PositiveIntegerField(null=True, blank=True)
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            _owner_constraint("rate_limit_exactly_one_owner"),
            models.CheckConstraint(
                condition=models.Q(tokens_per_minute__isnull=False) | models.Q(requests_per_minute__isnull=False),
                name="rate_limit_has_a_limit",
            ),
        ]

    def __str__(self) -> str:
        return f"TPM {self.tokens_per_minute or '∞'} / RPM {self.requests_per_minute or '∞'}"


class LimitPeriod(models.Model):
    """What one owner used in one refresh-period window: tokens and cost (USD).

    Rows of past windows are written by the period-closing job from the usage events (`closed`
    True); the counter-reconciling job keeps the current window's row up to date. One row per
    (level, entity, period, window start), so jobs that run late, twice or concurrently write
    the same records.
    """

    level = models.CharField(max_length=16, choices=Level.choices)
    entity_id = models.BigIntegerField()
    refresh_period = models.CharField(max_length=16, choices=RefreshPeriod.choices)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField(null=True, blank=True)
    used_tokens = models.PositiveBigIntegerField(default=0)
    spend_usd = models.DecimalField(max_digits=20, decimal_places=10, default=Decimal(0))
    closed = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-window_start"]
        constraints = [
            models.UniqueConstraint(
                fields=["level", "entity_id", "refresh_period", "window_start"], name="limit_period_unique_window"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.level} {self.entity_id} {self.refresh_period} from {self.window_start:%Y-%m-%d}"
