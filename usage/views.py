"""Console pages of usage (SPEC §7): the usage dashboard, the logs and the audit trail.

Every read goes through the policy (`usage.selectors`): usage needs `Action.VIEW_USAGE`, the
audit trail `Action.VIEW_AUDIT`. A viewer gets the 403 page on all of them; another group's
gateway, API key or event is the 404 page. The Logs and Audit trail pages take the API's
filters (`usage.filters`) and its cursor pager (`core.pagination`).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from core.errors import ApplicationError, NotFound, PermissionDenied, ValidationFailed
from core.pagination import cursor_page
from core.permissions import Action, gateways_for, groups_for
from usage.dashboard import RANGES, dashboard_for, scope_for, time_range_for
from usage.filters import AuditEventFilterSet, StrictFilterSet, UsageEventFilterSet
from usage.selectors import (
    audit_events_listed,
    filtered_in_scope,
    usage_event_get,
    usage_events_listed,
)


def _console_error(error: ApplicationError) -> Exception:
    """The Django exception that renders a service's 403 or 404 as the console's page."""
    if isinstance(error, PermissionDenied):
        return DjangoPermissionDenied(error.message)
    return Http404(error.message)


@login_required
def usage_dashboard(request: HttpRequest) -> HttpResponse:
    """Usage charts and tables of everything the user may read, or of one resource group
    (`?group=`), gateway (`?gateway=`) or API key (`?api_key=`), over `?range=24h|7d|30d|90d`
    or `?since=YYYY-MM-DD&until=YYYY-MM-DD` (UTC). Everything is in the URL, so a view can be
    shared. Another group's object is a 404; a viewer's group (or the page, for a user who
    reads usage in no group) is a 403."""
    try:
        scope = scope_for(request.user, request.GET)
    except ObjectDoesNotExist as error:
        raise Http404("No such resource group, gateway or API key.") from error
    except PermissionDenied as error:
        raise _console_error(error) from error
    now = timezone.now()
    time_range = time_range_for(request.GET, now)
    board = dashboard_for(request.user, scope, time_range, now)
    context = {
        "board": board,
        "ranges": RANGES,
        "groups": groups_for(request.user, Action.VIEW_USAGE).order_by("name"),
        "gateways": gateways_for(request.user, Action.VIEW_USAGE).select_related("resource_group").order_by("name"),
        "now": now,
    }
    return render(request, "usage/dashboard.html", context)


# Logs and the audit trail: newest first, a cursor page at a time.


def _filter_errors(error: ValidationFailed) -> list[str]:
    return [f"{name.replace('_', ' ').capitalize()}: {' '.join(messages)}" for name, messages in error.fields.items()]


def _query_without(request: HttpRequest, *names: str) -> str:
    params = request.GET.copy()
    for name in names:
        params.pop(name, None)
    return params.urlencode()


def _filtered_page(request: HttpRequest, filterset: StrictFilterSet, action: Action) -> dict[str, Any]:
    """The template context of a filtered, cursor-paginated list: the rows of `filterset` (the
    API's FilterSet of the same list, over a queryset already restricted to the user), the
    page and the query strings of the older and newer pages, the filter errors (then no rows),
    and the query strings for the links.

    Raises:
        django.core.exceptions.PermissionDenied: when a filter names a group, gateway or API key
            the user sees but may not do `action` in (the 403 page).
    """
    errors: list[str] = []
    try:
        rows = filtered_in_scope(request.user, action, filterset)
    except ValidationFailed as error:
        errors = _filter_errors(error)
        rows = filterset.queryset.none()
    except PermissionDenied as error:
        raise _console_error(error) from error
    page = cursor_page(rows, request)
    return {
        "events": page.rows,
        "next_query": page.next_query,
        "previous_query": page.previous_query,
        "errors": errors,
        "params": request.GET,
        "query": _query_without(request, "cursor"),
        "first_page": not request.GET.get("cursor"),
    }


@login_required
def usage_logs(request: HttpRequest) -> HttpResponse:
    """The usage events the user may read, newest first, 50 a page (`?cursor=`), filtered by
    `gateway`, `api_key`, `model`, `status` (`success`, `error` or a code), `error_code`,
    `since`, `until` (UTC) as in the API; a CSV link exports the same filter. Invalid filters
    are named above the table, which then shows nothing rather than something unfiltered.
    403 for a user who reads usage in no group (viewers)."""
    try:
        events = usage_events_listed(request.user).select_related("gateway")
    except PermissionDenied as error:
        raise _console_error(error) from error
    context = {
        **_filtered_page(request, UsageEventFilterSet(request.GET, queryset=events), Action.VIEW_USAGE),
        "csv_query": _query_without(request, "cursor", "format"),
        "gateways": gateways_for(request.user, Action.VIEW_USAGE).order_by("name"),
        "statuses": {"": "Any status", "success": "Succeeded", "error": "Failed", "429": "429 Too many requests"},
    }
    return render(request, "usage/logs.html", context)


@login_required
def usage_event_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One usage event with every field (SPEC §7); another group's event is a 404, one of a
    group where the user is a viewer a 403."""
    try:
        event = usage_event_get(request.user, pk, related=("gateway", "resource_group"))
    except (PermissionDenied, NotFound) as error:
        raise _console_error(error) from error
    context = {"event": event, "refusal_events_per_minute": settings.AIGW_REFUSAL_EVENTS_PER_MINUTE}
    return render(request, "usage/event_detail.html", context)


@login_required
def audit_trail(request: HttpRequest) -> HttpResponse:
    """The audit trail the user may read (owners, admins and auditors of their groups; events of
    no group for platform admins), newest first, 50 a page, filtered by `resource_group`,
    `actor`, `action`, `target_type`, `target_id`, `since`, `until`. Read-only: there is no way
    to change or delete an event. Developers and viewers get 403."""
    try:
        events = audit_events_listed(request.user)
    except PermissionDenied as error:
        raise _console_error(error) from error
    context = {
        **_filtered_page(
            request,
            AuditEventFilterSet(request.GET, queryset=events.select_related("resource_group")),
            Action.VIEW_AUDIT,
        ),
        "groups": groups_for(request.user, Action.VIEW_AUDIT).order_by("name"),
        "target_types": _target_types(events),
    }
    return render(request, "usage/audit.html", context)


def _target_types(events: QuerySet) -> list[str]:
    """The kinds of object (`gateway`, `api_key`…) in the audit events given, sorted, at most 50."""
    return list(events.order_by("target_type").values_list("target_type", flat=True).distinct()[:50])
