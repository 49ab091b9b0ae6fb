"""Reads of usage events and audit events for the console and the API, through the one policy
(`core.permissions`): usage events and rollups need `Action.VIEW_USAGE` in their resource
group (owners, admins, developers, auditors; platform admins everywhere), audit events
`Action.VIEW_AUDIT` (owners, admins, auditors; events of no group, i.e. providers and models,
only platform admins). Viewers read neither.

What a user may not read answers 403 when they can see it otherwise (its resource group's
settings: they know it exists) and 404 when they cannot (another group's), never confirming that
another group's object exists. A list with no scope is a 403 for a user who may do the action in
no group, and otherwise holds only the groups where they may.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import QuerySet, Sum

from core.errors import NotFound, PermissionDenied
from core.models import AuditEvent
from core.permissions import Action, denied_message, policy_for
from gateway.models import Gateway
from keys.models import ApiKey
from usage.filters import StrictFilterSet
from usage.models import UsageEvent
from usage.rollups import UsagePoint, usage_series

USAGE_EVENT_NOT_FOUND = "Usage event not found."
AUDIT_EVENT_NOT_FOUND = "Audit event not found."
NEWEST_FIRST = ("-created_at", "-id")


def require_anywhere(user: Any, action: Action) -> None:
    """Raise `PermissionDenied` (403) unless `user` may do `action` in at least one group.

    The check of a list without a scope (all usage, all logs, the whole audit trail)."""
    if not policy_for(user).can_anywhere(action):
        raise PermissionDenied(denied_message(action))


def require_in_scope(
    user: Any,
    action: Action,
    *,
    resource_group: int | None = None,
    gateway: int | None = None,
    api_key: int | None = None,
) -> None:
    """Raise `PermissionDenied` (403) when the scope named by id (the narrowest given) is in a
    group whose settings `user` sees but where their role lacks `action`. A scope the user cannot
    see at all (another group's, or no such id) passes: the list is then empty, as it would be
    for an unknown id. Reads the database only for a gateway or API key, and only when the user
    has a group where they may see settings but not do `action`."""
    policy = policy_for(user)
    allowed = policy.group_ids(action)
    if allowed is None:
        return
    visible_only = set(policy.group_ids(Action.VIEW_SETTINGS) or ()) - set(allowed)
    if not visible_only:
        return
    group_id: int | None = resource_group
    if api_key is not None:
        group_id = (
            ApiKey.objects.restrict(user, Action.VIEW_SETTINGS)
            .filter(pk=api_key)
            .values_list("gateway__resource_group_id", flat=True)
            .first()
        )
    elif gateway is not None:
        group_id = (
            Gateway.objects.restrict(user, Action.VIEW_SETTINGS)
            .filter(pk=gateway)
            .values_list("resource_group_id", flat=True)
            .first()
        )
    if group_id in visible_only:
        raise PermissionDenied(denied_message(action))


def filtered_in_scope(user: Any, action: Action, filterset: StrictFilterSet) -> QuerySet:
    """The rows of `filterset` (over a queryset already restricted to `user`), after checking
    that the group, gateway or API key its filters name is not one whose settings the user sees
    but where they may not do `action`.

    Raises:
        ValidationFailed: for invalid filters, each named.
        PermissionDenied: for a filter naming such a scope (a viewer's gateway…).
    """
    rows = filterset.filtered()
    values = filterset.values
    require_in_scope(
        user,
        action,
        resource_group=values.get("resource_group"),
        gateway=values.get("gateway"),
        api_key=values.get("api_key"),
    )
    return rows


def usage_events_for(user: Any) -> QuerySet[UsageEvent]:
    """The usage events `user` may read (`Action.VIEW_USAGE`), newest first."""
    return UsageEvent.objects.restrict(user, Action.VIEW_USAGE).order_by(*NEWEST_FIRST)


def usage_events_listed(user: Any) -> QuerySet[UsageEvent]:
    """`usage_events_for(user)` for a list without a scope.

    Raises:
        PermissionDenied: when the user may read usage in no group (viewers, non-members).
    """
    require_anywhere(user, Action.VIEW_USAGE)
    return usage_events_for(user)


def audit_events_for(user: Any) -> QuerySet[AuditEvent]:
    """The audit events `user` may read (`Action.VIEW_AUDIT`), newest first; those of no
    resource group (providers, models) for platform admins only."""
    return AuditEvent.objects.restrict(user, Action.VIEW_AUDIT).order_by(*NEWEST_FIRST)


def audit_events_listed(user: Any) -> QuerySet[AuditEvent]:
    """`audit_events_for(user)` for the whole trail.

    Raises:
        PermissionDenied: when the user may read the audit trail of no group (developers,
            viewers, non-members).
    """
    require_anywhere(user, Action.VIEW_AUDIT)
    return audit_events_for(user)


def _one(readable: QuerySet, visible: QuerySet, pk: int, action: Action, missing: str) -> Any:
    found = readable.filter(pk=pk).first()
    if found is not None:
        return found
    if visible.filter(pk=pk).exists():
        raise PermissionDenied(denied_message(action))
    raise NotFound(missing)


def usage_event_get(user: Any, pk: int, *, related: tuple[str, ...] = ()) -> UsageEvent:
    """The usage event `pk` if `user` may read it, with `related` joined.

    Raises:
        PermissionDenied: for an event of a group whose settings the user sees but whose usage
            they may not read (a viewer's).
        NotFound: for no such event, or one of another group.
    """
    readable = usage_events_for(user).select_related(*related)
    visible = UsageEvent.objects.restrict(user, Action.VIEW_SETTINGS)
    return _one(readable, visible, pk, Action.VIEW_USAGE, USAGE_EVENT_NOT_FOUND)


def audit_event_get(user: Any, pk: int) -> AuditEvent:
    """The audit event `pk` if `user` may read it.

    Raises:
        PermissionDenied: for an event of a group whose settings the user sees but whose audit
            trail they may not read (a developer's, a viewer's).
        NotFound: for no such event, one of another group, or one of no group (for anyone but
            platform admins).
    """
    visible = AuditEvent.objects.restrict(user, Action.VIEW_SETTINGS)
    return _one(audit_events_for(user), visible, pk, Action.VIEW_AUDIT, AUDIT_EVENT_NOT_FOUND)


def _gateway_events(user: Any, gateway: Gateway) -> QuerySet[UsageEvent]:
    return UsageEvent.objects.restrict(user, Action.VIEW_USAGE).filter(gateway=gateway)


def usage_events_latest(*, gateway: Gateway, user: Any, limit: int = 50) -> QuerySet[UsageEvent]:
    """The latest `limit` usage events of `gateway`, newest first, if `user` may read the
    gateway's usage (else none)."""
    return _gateway_events(user, gateway).order_by(*NEWEST_FIRST)[:limit]


def tokens_used(*, gateway: Gateway, since: datetime, user: Any) -> int:
    """Total tokens (every type) used through `gateway` since `since` (aware UTC); 0 unless
    `user` may read the gateway's usage."""
    total = _gateway_events(user, gateway).filter(created_at__gte=since).aggregate(t=Sum("total_tokens"))["t"]
    return int(total or 0)


@dataclass(frozen=True, slots=True)
class UsageSummary:
    """A gateway's usage since a UTC instant: totals and the models it served, by cost."""

    since: datetime
    totals: UsagePoint
    by_model: list[tuple[str, UsagePoint]]  # (model asked for, its totals), costliest first


def usage_summary(*, gateway: Gateway, since: datetime, until: datetime, user: Any, top: int = 10) -> UsageSummary:
    """Totals of `gateway`'s usage in [since, until) (aware UTC) and its `top` models by cost,
    read from the hourly rollups (and the raw events they have not caught up with); only what
    `user` may read (`Action.VIEW_USAGE`: zeros for a viewer)."""
    filters = {"gateway": gateway.pk}
    totals = usage_series(since=since, until=until, bucket="range", filters=filters, user=user)
    models = usage_series(since=since, until=until, bucket="range", group_by="model", filters=filters, user=user)
    models.sort(key=lambda point: (-point.cost_usd, -point.total_tokens, str(point.key)))
    return UsageSummary(
        since=since,
        totals=totals[0] if totals else UsagePoint(start=since),
        by_model=[(str(point.key), point) for point in models[:top]],
    )
