"""The one permission policy of aigw (SPEC §1 roles), used by the console and the API alike.

Objects in a resource group the user is not a member of are invisible: selectors filter them
out, so views answer 404 for them, never a 403 that confirms they exist.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from django.db.models import QuerySet

from gateway.models import Gateway, Membership, ResourceGroup, Role


class Action(StrEnum):
    VIEW = "view"
    MANAGE_GATEWAYS = "manage_gateways"  # create, edit, duplicate, delete gateways and their limits
    CREATE_KEYS = "create_keys"
    MANAGE_MEMBERS = "manage_members"


_ROLE_ACTIONS: dict[str, frozenset[Action]] = {
    Role.OWNER: frozenset(Action),
    Role.ADMIN: frozenset({Action.VIEW, Action.MANAGE_GATEWAYS, Action.CREATE_KEYS}),
    Role.DEVELOPER: frozenset({Action.VIEW, Action.CREATE_KEYS}),
    Role.AUDITOR: frozenset({Action.VIEW}),
    Role.VIEWER: frozenset({Action.VIEW}),
}

User = Any  # a user model instance or AnonymousUser


def role_in(user: User, group: ResourceGroup) -> str | None:
    """The user's role in `group`, `owner` for superusers, None for non-members."""
    if not user.is_authenticated:
        return None
    if getattr(user, "is_superuser", False):
        return Role.OWNER
    return Membership.objects.filter(user=user, resource_group=group).values_list("role", flat=True).first()


def can(user: User, action: Action, group: ResourceGroup) -> bool:
    """True when `user` may do `action` in `group`."""
    role = role_in(user, group)
    return role is not None and action in _ROLE_ACTIONS[role]


def groups_for(user: User, action: Action = Action.VIEW) -> QuerySet[ResourceGroup]:
    """The resource groups in which `user` may do `action`."""
    if not user.is_authenticated:
        return ResourceGroup.objects.none()
    if getattr(user, "is_superuser", False):
        return ResourceGroup.objects.all()
    roles = [role for role, actions in _ROLE_ACTIONS.items() if action in actions]
    return ResourceGroup.objects.filter(memberships__user=user, memberships__role__in=roles).distinct()


def gateways_for(user: User, action: Action = Action.VIEW) -> QuerySet[Gateway]:
    """Live (not deleted) gateways in the groups where `user` may do `action`."""
    return Gateway.objects.filter(resource_group__in=groups_for(user, action), deleted_at__isnull=True)


def can_change_api_key(user: User, api_key: Any) -> bool:
    """True when `user` may edit, rotate or revoke `api_key` (a `keys.models.ApiKey`).

    SPEC §1: owners and admins change any key of their groups (Action.MANAGE_GATEWAYS);
    developers the keys they created (Action.CREATE_KEYS and `created_by`). Costs one or two
    queries (the user's role); non-members get False (callers answer 404 before asking).
    """
    group = api_key.gateway.resource_group
    if can(user, Action.MANAGE_GATEWAYS, group):
        return True
    own_key = api_key.created_by_id is not None and api_key.created_by_id == user.pk
    return own_key and can(user, Action.CREATE_KEYS, group)


def can_read_providers(user: User) -> bool:
    """Providers and models are instance-wide: any member of a group (or a superuser) reads them."""
    return groups_for(user, Action.VIEW).exists()


def can_manage_providers(user: User) -> bool:
    """True for superusers and for owners or admins of any resource group (SPEC §1: admins manage
    providers; providers and models serve every group)."""
    return groups_for(user, Action.MANAGE_GATEWAYS).exists()
