"""The models every app shares: the audit trail (written by every app's services through
`core.audit.audit_record`) and the idempotency records of the management API. Their tables
keep the names of the apps that created them (`usage_auditevent`, `gateway_idempotencyrecord`)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from core.permissions import RestrictedManager


class AuditVia(models.TextChoices):
    CONSOLE = "console", "Console"
    API = "api", "API"
    COMMAND = "command", "Management command"
    SYSTEM = "system", "aigw itself"


class AuditEvent(models.Model):
    """One change to a gateway, API key, limit, provider, model, member or role (SPEC §7).

    Written by `core.audit.audit_record` from the services, so the console, the API, the CLI
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

    objects = RestrictedManager()
    policy_group_paths = ("resource_group_id",)  # events of no group (the catalog): platform admins

    class Meta:
        db_table = "usage_auditevent"  # the table the usage app created; the model moved here
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


class IdempotencyRecord(models.Model):
    """The answer to a management API create sent with an `Idempotency-Key` header, replayed to
    a retry with the same key (Stripe's and the IETF draft's semantics), kept for 24 hours.

    `response_body` is encrypted like provider credentials, because a create's answer may hold
    a secret shown once (an API key). `status_code` is null while the first request runs.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of method, path and body.")
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        db_table = "gateway_idempotencyrecord"  # the table the gateway app created; the model moved here
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotency_unique_user_key")]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.key}"
