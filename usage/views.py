"""Console pages of usage (SPEC §7): the usage dashboard."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ObjectDoesNotExist
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from gateway.permissions import Action, gateways_for, groups_for
from usage.dashboard import RANGES, dashboard_for, scope_for, time_range_for


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
        "groups": groups_for(request.user, Action.VIEW).order_by("name"),
        "gateways": gateways_for(request.user, Action.VIEW).select_related("resource_group").order_by("name"),
        "now": now,
    }
    return render(request, "usage/dashboard.html", context)
