"""Console pages of usage (SPEC §7): the usage dashboard, the logs and the audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from rest_framework.exceptions import ValidationError as DRFValidationError

from gateway.permissions import Action, gateways_for, groups_for
from usage.api import AUDIT_ROLES, audit_events_filter, audit_events_for, usage_events_filter, usage_events_for
from usage.dashboard import RANGES, dashboard_for, scope_for, time_range_for
from usage.models import AuditEvent


@login_required
def usage_dashboard(request: HttpRequest) -> HttpResponse:
    """Usage charts and tables of everything the user may see, or of one resource group
    (`?group=`), gateway (`?gateway=`) or API key (`?api_key=`), over `?range=24h|7d|30d|90d`
    or `?since=YYYY-MM-DD&until=YYYY-MM-DD` (UTC). Everything is in the URL, so a view can be
    shared. Another group's object is a 404."""
    try:
        scope = scope_for(request.user, request.GET)
    except ObjectDoesNotExist as error:
        raise Http404("No such resource group, gateway or API key.") from error
    now = timezone.now()
    time_range = time_range_for(request.GET, now)
    board = dashboard_for(request.user, scope, time_range, now)
    context = {
        "board": board,
        "ranges": RANGES,
        "groups": groups_for(request.user, Action.VIEW_SETTINGS).order_by("name"),
        "gateways": gateways_for(request.user, Action.VIEW_SETTINGS).select_related("resource_group").order_by("name"),
        "now": now,
    }
    return render(request, "usage/dashboard.html", context)


# Logs and the audit trail: newest first, a keyset ("cursor") page at a time.

PAGE_SIZE = 50


def _page(queryset: QuerySet, cursor: str, size: int = PAGE_SIZE) -> tuple[list, str | None]:
    """Up to `size` rows of `queryset` (ordered newest first by `created_at`, `id`) after
    `cursor`, and the cursor of the next page (None on the last). A cursor is the last row's
    `<created_at ISO>~<id>`; an unreadable one starts from the top. Stable while rows arrive."""
    at_raw, _, id_raw = cursor.partition("~")
    try:
        at = datetime.fromisoformat(at_raw) if at_raw else None
        last_id = int(id_raw) if id_raw else None
    except ValueError:
        at = last_id = None
    if at is not None and last_id is not None and at.tzinfo is not None:
        queryset = queryset.filter(Q(created_at__lt=at) | Q(created_at=at, id__lt=last_id))
    rows = list(queryset.order_by("-created_at", "-id")[: size + 1])
    if len(rows) <= size:
        return rows, None
    rows = rows[:size]
    return rows, f"{rows[-1].created_at.isoformat()}~{rows[-1].pk}"


def _filter_errors(error: DRFValidationError) -> list[str]:
    detail = error.detail if isinstance(error.detail, dict) else {"filter": error.detail}
    return [
        f"{name.replace('_', ' ').capitalize()}: {' '.join(str(m) for m in messages)}"
        for name, messages in detail.items()
    ]


def _query_without(request: HttpRequest, *names: str) -> str:
    params = request.GET.copy()
    for name in names:
        params.pop(name, None)
    return params.urlencode()


def _filtered_page(request: HttpRequest, rows: QuerySet, narrow) -> dict[str, Any]:
    """The template context of a filtered, keyset-paginated list: `rows` narrowed by `narrow`
    (the API's filter of the same list, so both accept the same parameters), the page, the
    next cursor, the filter errors (then no rows), and the query strings for the links."""
    errors: list[str] = []
    try:
        rows = narrow(rows, request.GET)
    except DRFValidationError as error:
        errors = _filter_errors(error)
        rows = rows.none()
    page, next_cursor = _page(rows, request.GET.get("cursor", ""))
    return {
        "events": page,
        "next_cursor": next_cursor,
        "errors": errors,
        "params": request.GET,
        "query": _query_without(request, "cursor"),
        "first_page": not request.GET.get("cursor"),
    }


@login_required
def usage_logs(request: HttpRequest) -> HttpResponse:
    """The usage events the user may see, newest first, 50 a page (`?cursor=`), filtered by
    `gateway`, `api_key`, `model`, `status` (`success`, `error` or a code), `error_code`,
    `since`, `until` (UTC) as in the API; a CSV link exports the same filter. Invalid filters
    are named above the table, which then shows nothing rather than something unfiltered."""
    events = usage_events_for(request.user).select_related("gateway")
    context = {
        **_filtered_page(request, events, usage_events_filter),
        "csv_query": _query_without(request, "cursor", "format"),
        "gateways": gateways_for(request.user, Action.VIEW_SETTINGS).order_by("name"),
        "statuses": {"": "Any status", "success": "Succeeded", "error": "Failed", "429": "429 Too many requests"},
    }
    return render(request, "usage/logs.html", context)


@login_required
def usage_event_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One usage event with every field (SPEC §7); another group's event is a 404."""
    event = get_object_or_404(usage_events_for(request.user).select_related("gateway", "resource_group"), pk=pk)
    return render(request, "usage/event_detail.html", {"event": event})


@login_required
def audit_trail(request: HttpRequest) -> HttpResponse:
    """The audit trail the user may read (owners, admins and auditors of their groups), newest
    first, 50 a page, filtered by `resource_group`, `actor`, `action`, `target_type`,
    `target_id`, `since`, `until`. Read-only: there is no way to change or delete an event.
    Developers and viewers get 403."""
    if not request.user.is_superuser and not _audit_groups(request.user).exists():
        raise PermissionDenied("The audit trail is for owners, admins and auditors of a resource group.")
    events = audit_events_for(request.user).select_related("resource_group")
    context = {
        **_filtered_page(request, events, audit_events_filter),
        "groups": _audit_groups(request.user),
        "target_types": sorted(set(AuditEvent.objects.values_list("target_type", flat=True).distinct()[:50])),
    }
    return render(request, "usage/audit.html", context)


def _audit_groups(user) -> QuerySet:
    """The resource groups whose audit trail `user` may read, by name."""
    groups = groups_for(user, Action.VIEW_SETTINGS)
    if not user.is_superuser:
        groups = groups.filter(memberships__user=user, memberships__role__in=AUDIT_ROLES).distinct()
    return groups.order_by("name")
