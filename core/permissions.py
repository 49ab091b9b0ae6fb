"""The one permission policy of aigw (SPEC §1 roles), used by the console, the API and the CLI.

Every read a user makes goes through `restrict(user, action)`, the method of the
`RestrictedQuerySet` that every group-owned model (and the model catalog) uses as its manager,
like netbox's `RestrictedQuerySet.restrict(user, action)`:

    Gateway.objects.restrict(request.user, Action.VIEW_SETTINGS).filter(pk=pk)

Each model says where its resource group is (`policy_group_paths`, one or more lookups ORed
together, e.g. `("gateway__resource_group",)` for API keys) or that it is part of the instance-
wide catalog (`policy_catalog = True`: providers and models). Objects in a resource group the
user may not act in are filtered out, so views answer 404 for them, never a 403 that confirms
they exist; a member whose role lacks the action on a visible object gets 403 from `require`.

A user's roles are read once per request (one query) and kept on the user object; services that
change memberships call `forget_roles(user)`.

Rules (SPEC §1):
- **platform admin** (Django `is_staff` or `is_superuser`): the only one who manages providers
  and the model catalog (`MANAGE_PROVIDERS`); sees every resource group (settings, usage, audit).
  A superuser may also do everything inside every group.
- **owner**: everything in the group, its members and its name included.
- **admin**: gateways, API keys, limits; chooses a gateway's models from the catalog.
- **developer**: reads the group's settings and usage; creates API keys and changes its own.
- **auditor**: reads settings, usage, logs, bodies where logged, the audit trail; never secrets.
- **viewer**: reads settings only (no usage, logs or audit).
- any signed-in user: reads the model catalog (names, kinds, prices; never credentials) and may
  create a resource group of their own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from django.apps import apps
from django.db import models
from django.db.models import Q

from core.errors import PermissionDenied


class Action(StrEnum):
    """What a user may do; each role of SPEC §1 is a set of these."""

    VIEW_SETTINGS = "view_settings"  # groups, members, gateways, API keys (never secrets), limits
    VIEW_USAGE = "view_usage"  # usage events, rollups, dashboards, logs, CSV exports
    VIEW_AUDIT = "view_audit"  # the audit trail
    VIEW_BODIES = "view_bodies"  # logged prompt and completion bodies
    MANAGE_GATEWAYS = "manage_gateways"  # create, edit, duplicate, delete gateways, any key, limits
    CREATE_KEYS = "create_keys"  # create API keys; change the ones one created
    MANAGE_MEMBERS = "manage_members"  # members and roles, rename and delete the group
    MANAGE_PROVIDERS = "manage_providers"  # providers, credentials, models, prices: platform admins


class Role(models.TextChoices):
    """A member's role in a resource group (SPEC §1)."""

    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    DEVELOPER = "developer", "Developer"
    AUDITOR = "auditor", "Auditor"
    VIEWER = "viewer", "Viewer"


_GROUP_ACTIONS = frozenset(Action) - {Action.MANAGE_PROVIDERS}
ROLE_ACTIONS: dict[str, frozenset[Action]] = {
    Role.OWNER: _GROUP_ACTIONS,
    Role.ADMIN: frozenset(
        {
            Action.VIEW_SETTINGS,
            Action.VIEW_USAGE,
            Action.VIEW_AUDIT,
            Action.VIEW_BODIES,
            Action.MANAGE_GATEWAYS,
            Action.CREATE_KEYS,
        }
    ),
    Role.DEVELOPER: frozenset({Action.VIEW_SETTINGS, Action.VIEW_USAGE, Action.CREATE_KEYS}),
    Role.AUDITOR: frozenset({Action.VIEW_SETTINGS, Action.VIEW_USAGE, Action.VIEW_AUDIT, Action.VIEW_BODIES}),
    Role.VIEWER: frozenset({Action.VIEW_SETTINGS}),
}
# What a platform admin (is_staff) may do in every group, whatever their own role there.
PLATFORM_ADMIN_ACTIONS = frozenset({Action.VIEW_SETTINGS, Action.VIEW_USAGE, Action.VIEW_AUDIT})

User = Any  # a user model instance or AnonymousUser

_CACHE_ATTRIBUTE = "_aigw_policy"


def is_platform_admin(user: User) -> bool:
    """True for an active, signed-in user with Django's `is_staff` or `is_superuser` (SPEC §1)."""
    return bool(
        getattr(user, "is_authenticated", False)
        and getattr(user, "is_active", False)
        and (getattr(user, "is_staff", False) or getattr(user, "is_superuser", False))
    )


class Policy:
    """One user's rights, resolved once: their role in each resource group (one query) and
    whether they are a platform admin or a superuser."""

    def __init__(self, user: User) -> None:
        self.user = user
        self.authenticated = bool(getattr(user, "is_authenticated", False) and getattr(user, "is_active", False))
        self.superuser = self.authenticated and bool(getattr(user, "is_superuser", False))
        self.platform_admin = is_platform_admin(user)
        self.roles: dict[int, str] = {}
        if self.authenticated and not self.superuser:
            membership = apps.get_model("gateway", "Membership")
            self.roles = dict(membership.objects.filter(user=user).values_list("resource_group_id", "role"))

    def role_in(self, group_id: int) -> str | None:
        """The user's role in the group (`owner` for superusers), None for non-members."""
        if self.superuser:
            return Role.OWNER
        return self.roles.get(group_id)

    def actions_in(self, group_id: int) -> frozenset[Action]:
        """Every action the user may do in the group (platform actions included)."""
        if self.superuser:
            return _GROUP_ACTIONS
        role = self.roles.get(group_id)
        actions = ROLE_ACTIONS[role] if role else frozenset()
        return actions | PLATFORM_ADMIN_ACTIONS if self.platform_admin else actions

    def can(self, action: Action, group_id: int) -> bool:
        """True when the user may do `action` in the group with id `group_id`."""
        return action in self.actions_in(group_id)

    def group_ids(self, action: Action) -> list[int] | None:
        """The ids of the groups where the user may do `action`; None means every group."""
        if self.superuser or (self.platform_admin and action in PLATFORM_ADMIN_ACTIONS):
            return None
        return sorted(group for group, role in self.roles.items() if action in ROLE_ACTIONS[role])

    def can_anywhere(self, action: Action) -> bool:
        """True when the user may do `action` in at least one group (or everywhere)."""
        ids = self.group_ids(action)
        return ids is None or bool(ids)


def policy_for(user: User) -> Policy:
    """The user's `Policy`, computed on first use and kept on the user object, so that a request
    (whose `request.user` is one object) resolves roles once."""
    policy = getattr(user, _CACHE_ATTRIBUTE, None)
    if policy is None or policy.user is not user:
        policy = Policy(user)
        with contextlib.suppress(AttributeError):  # objects without a __dict__ are not cached
            setattr(user, _CACHE_ATTRIBUTE, policy)
    return policy


def forget_roles(user: User) -> None:
    """Drop the cached policy of `user` (after their memberships changed)."""
    if user is not None and _CACHE_ATTRIBUTE in getattr(user, "__dict__", {}):
        delattr(user, _CACHE_ATTRIBUTE)


def _group_id(group: models.Model | int) -> int:
    return group if isinstance(group, int) else group.pk


def can(user: User, action: Action, group: models.Model | int | None = None) -> bool:
    """True when `user` may do `action` in `group` (an instance or id). For `MANAGE_PROVIDERS`
    no group is needed: it is the platform admin's, instance-wide."""
    if action == Action.MANAGE_PROVIDERS:
        return is_platform_admin(user)
    if group is None:
        raise TypeError(f"{action} needs a resource group")
    return policy_for(user).can(action, _group_id(group))


def role_in(user: User, group: models.Model | int) -> str | None:
    """The user's role in `group`, `owner` for superusers, None for non-members."""
    return policy_for(user).role_in(_group_id(group))


_DENIED = {
    Action.VIEW_SETTINGS: "Reading this needs a role in its resource group.",
    Action.VIEW_USAGE: "Reading usage and logs needs the owner, admin, developer or auditor role in the group.",
    Action.VIEW_AUDIT: "Reading the audit trail needs the owner, admin or auditor role in the resource group.",
    Action.VIEW_BODIES: "Reading logged bodies needs the owner, admin or auditor role in the resource group.",
    Action.MANAGE_GATEWAYS: "Changing gateways, API keys and limits needs the owner or admin role in the group.",
    Action.CREATE_KEYS: "Creating API keys needs the owner, admin or developer role in the resource group.",
    Action.MANAGE_MEMBERS: "Changing a resource group or its members needs the owner role in it.",
    Action.MANAGE_PROVIDERS: "Only platform admins manage providers, models and prices.",
}


def denied_message(action: Action) -> str:
    """The sentence a 403 for `action` shows."""
    return _DENIED[action]


def require(user: User, action: Action, group: models.Model | int | None = None, message: str | None = None) -> None:
    """Raise `core.errors.PermissionDenied` (403) unless `user` may do `action` in `group`."""
    if not can(user, action, group):
        raise PermissionDenied(message or denied_message(action))


def can_change_api_key(user: User, api_key: Any) -> bool:
    """True when `user` may edit, rotate or revoke `api_key` (a `keys.models.ApiKey`).

    SPEC §1: owners and admins change any key of their groups (Action.MANAGE_GATEWAYS);
    developers the keys they created (Action.CREATE_KEYS and `created_by`)."""
    group_id = api_key.gateway.resource_group_id
    if can(user, Action.MANAGE_GATEWAYS, group_id):
        return True
    own_key = api_key.created_by_id is not None and api_key.created_by_id == user.pk
    return own_key and can(user, Action.CREATE_KEYS, group_id)


class RestrictedQuerySet(models.QuerySet):
    """A queryset that knows how to narrow itself to what a user may see (netbox's pattern).

    The model declares `policy_group_paths` (lookups to its resource group's id, ORed) or
    `policy_catalog = True` (providers and models: readable by every signed-in user, written by
    platform admins)."""

    def restrict(self, user: User, action: Action = Action.VIEW_SETTINGS) -> RestrictedQuerySet:
        """The objects of this queryset on which `user` may do `action`; none for anonymous users."""
        policy = policy_for(user)
        if not policy.authenticated:
            return self.none()
        if getattr(self.model, "policy_catalog", False):
            if action == Action.VIEW_SETTINGS or (action == Action.MANAGE_PROVIDERS and policy.platform_admin):
                return self.all()
            return self.none()
        if action == Action.MANAGE_PROVIDERS:
            return self.none()
        ids = policy.group_ids(action)
        if ids is None:
            return self.all()
        if not ids:
            return self.none()
        return self.filter(_any_of(self.model.policy_group_paths, ids))


RestrictedManager = models.Manager.from_queryset(RestrictedQuerySet)
"""The manager of every model the policy guards: `Model.objects.restrict(user, action)`."""


def _any_of(paths: Iterable[str], ids: list[int]) -> Q:
    condition = Q()
    for path in paths:
        condition |= Q(**{f"{path}__in": ids})
    return condition


def groups_for(user: User, action: Action = Action.VIEW_SETTINGS):
    """The resource groups in which `user` may do `action` (a restricted queryset)."""
    return apps.get_model("gateway", "ResourceGroup").objects.restrict(user, action)


def gateways_for(user: User, action: Action = Action.VIEW_SETTINGS):
    """Live (not deleted) gateways in the groups where `user` may do `action`."""
    return apps.get_model("gateway", "Gateway").objects.restrict(user, action).filter(deleted_at__isnull=True)
