"""Writes for limits. Token quotas: set, remove, and the automatic suspension at the quota."""

from __future__ import annotations

from django.db import transaction

from keys.models import ApiKey, ApiKeyStatus, SuspendedReason
from quotas.models import RefreshPeriod, TokenQuota


def _owner_filter(*, api_key=None, gateway=None, resource_group=None) -> dict:
    owners = {"api_key": api_key, "gateway": gateway, "resource_group": resource_group}
    given = {k: v for k, v in owners.items() if v is not None}
    if len(given) != 1:
        raise ValueError("give exactly one of api_key, gateway, resource_group")
    return given


def _keys_under(*, api_key=None, gateway=None, resource_group=None):
    if api_key is not None:
        return ApiKey.objects.filter(pk=api_key.pk)
    if gateway is not None:
        return ApiKey.objects.filter(gateway=gateway)
    return ApiKey.objects.filter(gateway__resource_group=resource_group)


@transaction.atomic
def token_quota_set(
    *,
    limit_tokens: int | None,
    refresh_period: str = RefreshPeriod.NONE,
    api_key=None,
    gateway=None,
    resource_group=None,
) -> TokenQuota | None:
    """Set (or, with `limit_tokens=None`, remove) the token quota of one key, gateway or group.

    Keys suspended for `token_quota` under that owner become active again at once: enforcement
    compares used tokens with the quota on every request, so a raised quota lets the next
    request through and a quota still below usage rejects it again (Zenlayer's semantics).

    Raises:
        ValueError: for a non-positive limit or not exactly one owner.
    """
    owner = _owner_filter(api_key=api_key, gateway=gateway, resource_group=resource_group)
    if limit_tokens is None:
        TokenQuota.objects.filter(**owner).delete()
        quota = None
    else:
        if limit_tokens <= 0:
            raise ValueError("a token quota must be a positive number of tokens")
        quota, _ = TokenQuota.objects.update_or_create(
            **owner, defaults={"limit_tokens": limit_tokens, "refresh_period": refresh_period}
        )
    _keys_under(**owner).filter(
        status=ApiKeyStatus.SUSPENDED, suspended_reason=SuspendedReason.TOKEN_QUOTA
    ).update(status=ApiKeyStatus.ACTIVE, suspended_reason=SuspendedReason.NONE)
    return quota


def api_keys_suspend_for_token_quota(*, api_key_ids: list[int]) -> int:
    """Mark active keys as suspended with reason `token_quota`; returns how many changed."""
    return ApiKey.objects.filter(pk__in=api_key_ids, status=ApiKeyStatus.ACTIVE).update(
        status=ApiKeyStatus.SUSPENDED, suspended_reason=SuspendedReason.TOKEN_QUOTA
    )


def api_key_reactivate_after_token_quota(*, api_key_id: int) -> int:
    """Make a key suspended for `token_quota` active again (its quota has room again, e.g. in
    a new refresh period); returns 1 if it changed, else 0."""
    return ApiKey.objects.filter(
        pk=api_key_id, status=ApiKeyStatus.SUSPENDED, suspended_reason=SuspendedReason.TOKEN_QUOTA
    ).update(status=ApiKeyStatus.ACTIVE, suspended_reason=SuspendedReason.NONE)
