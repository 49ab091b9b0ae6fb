"""Usage events: one metered request each (SPEC §7)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


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
    resource_group = models.ForeignKey("gateway.ResourceGroup", on_delete=models.PROTECT, related_name="+")
    gateway = models.ForeignKey("gateway.Gateway", on_delete=models.PROTECT, related_name="usage_events")
    api_key = models.ForeignKey("keys.ApiKey", on_delete=models.PROTECT, related_name="usage_events")
    api_key_name = models.CharField(max_length=100)
    endpoint = models.CharField(max_length=64, default="chat.completions")
    model_requested = models.CharField(max_length=200)
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


class AuditVia(models.TextChoices):
    CONSOLE = "console", "Console"
    API = "api", "API"
    COMMAND = "command", "Management command"
    SYSTEM = "system", "aigw itself"


class AuditEvent(models.Model):
    """One change to a gateway, API key, limit, provider, model, member or role (SPEC §7).

    Written by `usage.audit.audit_record` from the services, so the console, the API, the CLI
    (through the API) and the jobs leave the same trail. `before` and `after` are JSON objects
    of the changed object's fields (null for a creation's `before` and a removal's `after`);
    secrets never appear in them. The row is never updated or deleted by aigw: `save()` refuses
    to change an existing event.
    """

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, blank=True)
    via = models.CharField(max_length=16, choices=AuditVia.choices, default=AuditVia.SYSTEM)
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=32)
    target_id = models.CharField(max_length=64)
    target_name = models.CharField(max_length=200, blank=True)
    resource_group = models.ForeignKey(
        "gateway.ResourceGroup", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["resource_group", "-created_at"], name="audit_group_time"),
            models.Index(fields=["target_type", "target_id", "-created_at"], name="audit_target_time"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_name or 'system'} {self.action} {self.target_name}"

    def save(self, *args, **kwargs) -> None:
        """Insert only: an audit event, once written, is never changed.

        Raises:
            ValueError: when called on an event that is already stored.
        """
        if self.pk is not None:
            raise ValueError("audit events are never changed")
        super().save(*args, **kwargs)
