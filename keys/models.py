"""API keys: the credentials applications send to `/v1/` (SPEC §1)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from core.permissions import RestrictedManager


class ApiKeyStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"
    EXPIRED = "expired", "Expired"
    REVOKED = "revoked", "Revoked"


class SuspendedReason(models.TextChoices):
    NONE = "", "—"
    ADMIN = "admin", "Suspended by an admin"
    TOKEN_QUOTA = "token_quota", "Token quota reached"


class ApiKey(models.Model):
    """An API key of one gateway. Only a SHA-256 hash and a short visible prefix are stored.

    The full secret (`aigw_` + 43 base62 characters) exists only in the response that creates
    or rotates it. `expires_at` None means unlimited validity (Zenlayer's blank / Long-lived).
    """

    gateway = models.ForeignKey("gateway.Gateway", on_delete=models.PROTECT, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, help_text="The first characters of the secret, for recognition.")
    hashed_secret = models.CharField(max_length=64, unique=True, editable=False)
    status = models.CharField(max_length=16, choices=ApiKeyStatus.choices, default=ApiKeyStatus.ACTIVE)
    suspended_reason = models.CharField(
        max_length=16, choices=SuspendedReason.choices, default=SuspendedReason.NONE, blank=True
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = RestrictedManager()
    policy_group_paths = ("gateway__resource_group_id",)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def quota_entity_id(self) -> str:
        """Vercel's quota entity id for this key: `api_key_id_<id>`."""
        return f"api_key_id_{self.pk}"

    def effective_status(self, now=None) -> str:
        """The status a user sees: `expired` as soon as `expires_at` has passed, whatever jobs did."""
        now = now or timezone.now()
        if self.status == ApiKeyStatus.ACTIVE and self.expires_at is not None and self.expires_at <= now:
            return ApiKeyStatus.EXPIRED
        return self.status


class ApiToken(models.Model):
    """A personal API token for the management API (`/api/v1/`), acting as its user.

    Stored like API keys: a SHA-256 hash and a visible prefix; the secret (`aigwp_` + 43 base62
    characters) is shown once. `last_used_at` is written at most once a minute (netbox's habit).
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16)
    hashed_secret = models.CharField(max_length=64, unique=True, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
