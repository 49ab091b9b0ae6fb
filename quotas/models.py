"""Limits: token quotas (this module grows spend budgets and TPM/RPM in later issues)."""

from __future__ import annotations

from django.db import models


class RefreshPeriod(models.TextChoices):
    """When a limit's window restarts; windows start at 00:00 UTC (SPEC §3)."""

    NONE = "none", "Never (lifetime)"
    DAILY = "daily", "Daily"
    WEEKLY = "weekly", "Weekly (Monday)"
    MONTHLY = "monthly", "Monthly (1st)"


class TokenQuota(models.Model):
    """Maximum tokens (every token type) for an API key, a gateway or a resource group.

    Exactly one of `api_key`, `gateway`, `resource_group` is set; each of them has at most one
    token quota. Used tokens count in the window of `refresh_period` (lifetime for `none`).
    Zenlayer: when used tokens reach the quota the key is suspended until the quota is raised.
    """

    api_key = models.OneToOneField(
        "keys.ApiKey", on_delete=models.CASCADE, null=True, blank=True, related_name="token_quota"
    )
    gateway = models.OneToOneField(
        "gateway.Gateway", on_delete=models.CASCADE, null=True, blank=True, related_name="token_quota"
    )
    resource_group = models.OneToOneField(
        "gateway.ResourceGroup", on_delete=models.CASCADE, null=True, blank=True, related_name="token_quota"
    )
    limit_tokens = models.PositiveBigIntegerField()
    refresh_period = models.CharField(
        max_length=16, choices=RefreshPeriod.choices, default=RefreshPeriod.NONE
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(api_key__isnull=False, gateway__isnull=True, resource_group__isnull=True)
                    | models.Q(api_key__isnull=True, gateway__isnull=False, resource_group__isnull=True)
                    | models.Q(api_key__isnull=True, gateway__isnull=True, resource_group__isnull=False)
                ),
                name="token_quota_exactly_one_owner",
            ),
            models.CheckConstraint(condition=models.Q(limit_tokens__gt=0), name="token_quota_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.limit_tokens:,} tokens ({self.refresh_period})"
