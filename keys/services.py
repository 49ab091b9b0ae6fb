"""Writes for API keys: create, revoke. Every caller (console, API, CLI, jobs) goes through here."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import models, transaction
from django.utils import timezone

from core.audit import audit_record, audit_snapshot
from core.errors import ValidationFailed
from core.freshness import bump_group
from keys.models import ApiKey, ApiKeyStatus, ApiToken
from keys.tokens import API_TOKEN_PREFIX, generate_secret, hash_secret, visible_prefix

# The fields of an API key that its audit events show (never the hash).
API_KEY_AUDIT_FIELDS = ["name", "gateway", "prefix", "status", "suspended_reason", "expires_at", "revoked_at"]


def _audit_api_key(action: str, api_key: ApiKey, before: dict | None) -> None:
    audit_record(
        action=action,
        target=api_key,
        resource_group=api_key.gateway.resource_group_id,
        before=before,
        after=audit_snapshot(api_key, API_KEY_AUDIT_FIELDS),
    )


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
    _audit_api_key("api_key.create", api_key, None)
    return api_key, secret


@transaction.atomic
def api_key_update(
    *, api_key: ApiKey, name: str | None = None, expires_at: datetime | None = None, clear_expiry: bool = False
) -> ApiKey:
    """Rename a key and/or change its expiry (`expires_at`, aware UTC; `clear_expiry=True` for
    unlimited validity). An expired key given a future expiry is active again; a revoked key
    stays revoked. Effective on the data plane from the next request.

    Raises:
        ValidationFailed: `{"name": …}` for a blank name, `{"expires_at": …}` for a past expiry.
    """
    api_key = ApiKey.objects.select_related("gateway").select_for_update(of=("self",)).get(pk=api_key.pk)
    before = audit_snapshot(api_key, API_KEY_AUDIT_FIELDS)
    if name is not None:
        if not name.strip():
            raise ValidationFailed({"name": "This field may not be blank."})
        api_key.name = name.strip()
    if clear_expiry:
        api_key.expires_at = None
    elif expires_at is not None:
        if expires_at <= timezone.now():
            raise ValidationFailed({"expires_at": "Must be in the future."})
        api_key.expires_at = expires_at
    if api_key.status == ApiKeyStatus.EXPIRED and (api_key.expires_at is None or api_key.expires_at > timezone.now()):
        api_key.status = ApiKeyStatus.ACTIVE
    api_key.save(update_fields=["name", "expires_at", "status"])
    _audit_api_key("api_key.update", api_key, before)
    return api_key


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Revoke `api_key` at once; requests with it get 401 `key_revoked` from the next one.
    Revoking a revoked key changes nothing."""
    if api_key.status == ApiKeyStatus.REVOKED:
        return api_key
    before = audit_snapshot(api_key, API_KEY_AUDIT_FIELDS)
    api_key.status = ApiKeyStatus.REVOKED
    api_key.revoked_at = timezone.now()
    api_key.save(update_fields=["status", "revoked_at"])
    _audit_api_key("api_key.revoke", api_key, before)
    return api_key


@transaction.atomic
def api_key_rotate(*, api_key: ApiKey) -> tuple[ApiKey, str]:
    """Give `api_key` a new secret; the old one stops working from the next request.

    The key keeps its id, so its `quotaEntityId`, budget, limits and usage history stay.
    Returns `(api_key, secret)`; the secret is in this answer only.

    Raises:
        ValidationFailed: for a revoked key (a revoked key stays revoked).
    """
    api_key = ApiKey.objects.select_related("gateway").select_for_update(of=("self",)).get(pk=api_key.pk)
    if api_key.status == ApiKeyStatus.REVOKED:
        raise ValidationFailed("A revoked API key cannot be rotated.")
    before = audit_snapshot(api_key, API_KEY_AUDIT_FIELDS)
    secret = generate_secret()
    api_key.prefix = visible_prefix(secret)
    api_key.hashed_secret = hash_secret(secret)
    api_key.save(update_fields=["prefix", "hashed_secret"])
    _audit_api_key("api_key.rotate", api_key, before)
    return api_key, secret


def api_keys_mark_used(*, api_key_ids: list[int], at: datetime) -> None:
    """Record that these keys were used at `at` (aware UTC), in one UPDATE. The data plane
    writes each key at most once a minute per process (netbox's habit), gathered over a second,
    so it is not a write per request, nor one per key."""
    if api_key_ids:
        ApiKey.objects.filter(pk__in=api_key_ids).update(last_used_at=at)


def api_keys_mark_expired(*, now: datetime) -> int:
    """Set active keys whose `expires_at` is at or before `now` (aware UTC) to `expired`, each
    with a conditional UPDATE (safe for concurrent workers: a key changes, and is audited as
    `api_key.expire` by aigw itself, once); returns how many changed."""
    changed = 0
    due = ApiKey.objects.filter(status=ApiKeyStatus.ACTIVE, expires_at__lte=now).select_related("gateway")
    for api_key in due.iterator(chunk_size=500):
        if ApiKey.objects.filter(pk=api_key.pk, status=ApiKeyStatus.ACTIVE).update(status=ApiKeyStatus.EXPIRED):
            changed += 1
            bump_group(api_key.gateway.resource_group_id)
            before = audit_snapshot(api_key, API_KEY_AUDIT_FIELDS)
            api_key.status = ApiKeyStatus.EXPIRED
            _audit_api_key("api_key.expire", api_key, before)
    return changed


LAST_USED_EVERY = timedelta(minutes=1)


def api_token_create(*, user, name: str, expires_at: datetime | None = None) -> tuple[ApiToken, str]:
    """Create a personal API token for `user`; returns `(token, secret)`, the secret only here."""
    secret = generate_secret(API_TOKEN_PREFIX)
    token = ApiToken.objects.create(
        user=user, name=name, prefix=visible_prefix(secret), hashed_secret=hash_secret(secret), expires_at=expires_at
    )
    audit_record(
        action="api_token.create",
        target=token,
        target_name=f"{user.get_username()}: {name}",
        after=audit_snapshot(token, ["user", "name", "prefix", "expires_at"]),
    )
    return token, secret


def api_token_revoke(*, token: ApiToken) -> ApiToken:
    """Revoke a personal API token at once."""
    if token.revoked_at is not None:
        return token
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    audit_record(
        action="api_token.revoke",
        target=token,
        target_name=f"{token.user.get_username()}: {token.name}",
        before={"revoked_at": None},
        after=audit_snapshot(token, ["revoked_at"]),
    )
    return token


def api_token_mark_used(*, token: ApiToken, now: datetime) -> None:
    """Record a use of `token`, at most once a minute (one conditional UPDATE)."""
    if token.last_used_at is not None and now - token.last_used_at < LAST_USED_EVERY:
        return
    ApiToken.objects.filter(pk=token.pk).filter(
        models.Q(last_used_at__isnull=True) | models.Q(last_used_at__lt=now - LAST_USED_EVERY)
    ).update(last_used_at=now)
