"""Writes for API keys: create, revoke. Every caller (console, API, CLI, jobs) goes through here."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import models, transaction
from django.utils import timezone

from keys.models import ApiKey, ApiKeyStatus, ApiToken
from keys.tokens import API_TOKEN_PREFIX, generate_secret, hash_secret, visible_prefix


@transaction.atomic
def api_key_create(*, gateway, name: str, expires_at: datetime | None = None, created_by=None) -> tuple[ApiKey, str]:
    """Create an API key on `gateway`; returns `(api_key, secret)`.

    The secret is returned here and nowhere else: only its hash is stored.
    `expires_at` is an aware UTC datetime, or None for unlimited validity.
    """
    secret = generate_secret()
    api_key = ApiKey.objects.create(
        gateway=gateway,
        name=name,
        prefix=visible_prefix(secret),
        hashed_secret=hash_secret(secret),
        expires_at=expires_at,
        created_by=created_by,
    )
    return api_key, secret


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Revoke `api_key` at once; requests with it get 401 `key_revoked` (within the config TTL).
    Revoking a revoked key changes nothing."""
    if api_key.status == ApiKeyStatus.REVOKED:
        return api_key
    api_key.status = ApiKeyStatus.REVOKED
    api_key.revoked_at = timezone.now()
    api_key.save(update_fields=["status", "revoked_at"])
    return api_key


@transaction.atomic
def api_key_rotate(*, api_key: ApiKey) -> tuple[ApiKey, str]:
    """Give `api_key` a new secret; the old one stops working (within the config TTL).

    The key keeps its id, so its `quotaEntityId`, budget, limits and usage history stay.
    Returns `(api_key, secret)`; the secret is in this answer only.

    Raises:
        ValueError: for a revoked key (a revoked key stays revoked).
    """
    api_key = ApiKey.objects.select_for_update().get(pk=api_key.pk)
    if api_key.status == ApiKeyStatus.REVOKED:
        raise ValueError("a revoked API key cannot be rotated")
    secret = generate_secret()
    api_key.prefix = visible_prefix(secret)
    api_key.hashed_secret = hash_secret(secret)
    api_key.save(update_fields=["prefix", "hashed_secret"])
    return api_key, secret


def api_key_mark_used(*, api_key_id: int, at: datetime) -> None:
    """Record that the key was used at `at` (aware UTC). The data plane calls this at most
    once a minute per key and process (netbox's habit), so it is not a write per request."""
    ApiKey.objects.filter(pk=api_key_id).update(last_used_at=at)


def api_keys_mark_expired(*, now: datetime) -> int:
    """Set active keys whose `expires_at` is at or before `now` (aware UTC) to `expired`, in one
    conditional UPDATE (safe for concurrent workers); returns how many changed."""
    return ApiKey.objects.filter(status=ApiKeyStatus.ACTIVE, expires_at__lte=now).update(status=ApiKeyStatus.EXPIRED)


LAST_USED_EVERY = timedelta(minutes=1)


def api_token_create(*, user, name: str, expires_at: datetime | None = None) -> tuple[ApiToken, str]:
    """Create a personal API token for `user`; returns `(token, secret)`, the secret only here."""
    secret = generate_secret(API_TOKEN_PREFIX)
    token = ApiToken.objects.create(
        user=user, name=name, prefix=visible_prefix(secret), hashed_secret=hash_secret(secret), expires_at=expires_at
    )
    return token, secret


def api_token_revoke(*, token: ApiToken) -> ApiToken:
    """Revoke a personal API token at once."""
    token.revoked_at = token.revoked_at or timezone.now()
    token.save(update_fields=["revoked_at"])
    return token


def api_token_mark_used(*, token: ApiToken, now: datetime) -> None:
    """Record a use of `token`, at most once a minute (one conditional UPDATE)."""
    if token.last_used_at is not None and now - token.last_used_at < LAST_USED_EVERY:
        return
    ApiToken.objects.filter(pk=token.pk).filter(
        models.Q(last_used_at__isnull=True) | models.Q(last_used_at__lt=now - LAST_USED_EVERY)
    ).update(last_used_at=now)
