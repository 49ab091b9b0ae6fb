"""Reads of API keys: the one way the console and the management API find the keys a user may see.

Every read goes through the permission policy (`ApiKey.objects.restrict(user, action)`,
`core.permissions`); a key of a deleted gateway is not listed anywhere (its gateway is gone
for the console and the API, while its usage and audit records stay readable).
"""

from __future__ import annotations

from django.db.models import QuerySet

from core.permissions import Action, User
from keys.models import ApiKey, ApiToken


def api_keys_for(user: User, action: Action = Action.VIEW_SETTINGS) -> QuerySet[ApiKey]:
    """The API keys of live (not deleted) gateways in the resource groups where `user` may do
    `action`; none for anonymous users. Unordered: callers order and page it."""
    return ApiKey.objects.restrict(user, action).filter(gateway__deleted_at__isnull=True)


def api_key_for(user: User, pk: int, action: Action = Action.VIEW_SETTINGS) -> ApiKey | None:
    """The API key `pk` of a live gateway where `user` may do `action`, with its gateway, resource
    group and own spend budget; None when it does not exist or the user may not see it (callers
    answer 404 for both, never a 403 that confirms it exists)."""
    return api_keys_for(user, action).select_related("gateway__resource_group", "spend_budget").filter(pk=pk).first()


def api_tokens_of(user: User) -> QuerySet[ApiToken]:
    """The personal API tokens of `user` (never anyone else's, whatever their role): live ones
    first, newest first. Tokens belong to a user, not to a resource group, so the policy's
    `restrict` has nothing to narrow; the user's own relation is the read path."""
    if not getattr(user, "is_authenticated", False):
        return ApiToken.objects.none()
    return user.api_tokens.order_by("revoked_at", "-created_at")
