"""Console views (HTML, django-htmx). Reads go through selectors and the permission policy,
writes through services."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_http_methods

from gateway.forms import GatewayCreateForm
from gateway.permissions import Action, can, gateways_for, groups_for
from gateway.services import gateway_create as create_gateway
from keys.models import ApiKeyStatus
from quotas.models import TokenQuota
from quotas.periods import window_start
from usage.selectors import tokens_used, usage_events_latest

TABS = {"basic": "Basic information", "logs": "Logs"}


@login_required
def gateway_list(request: HttpRequest) -> HttpResponse:
    """All live gateways the user may see, with their key counts."""
    gateways = (
        gateways_for(request.user)
        .select_related("resource_group")
        .annotate(active_keys=Count("api_keys", filter=Q(api_keys__status=ApiKeyStatus.ACTIVE)))
        .order_by("resource_group__name", "name")
    )
    can_create = groups_for(request.user, Action.MANAGE_GATEWAYS).exists()
    return render(request, "gateway/gateway_list.html", {"gateways": gateways, "can_create": can_create})


@login_required
@require_http_methods(["GET", "POST"])
def gateway_create(request: HttpRequest) -> HttpResponse:
    """The Create AI Gateway dialog: its form (GET, or POST with errors) or the show-once key."""
    groups = groups_for(request.user, Action.MANAGE_GATEWAYS)
    if not groups.exists():
        raise Http404("No resource group where you may create gateways.")
    if request.method == "POST":
        form = GatewayCreateForm(request.POST, groups=groups)
        if form.is_valid():
            data = form.cleaned_data
            gateway, api_key, secret = create_gateway(
                resource_group=data["resource_group"],
                name=data["name"],
                created_by=request.user,
                token_quota=None if data["unlimited_quota"] else data["token_quota"],
                expires_at=data["expires_at"],
            )
            # The secret is in this response only: never cache it, never store it.
            template = "gateway/gateway_create.html" + ("#created" if _partial(request) else "")
            response = render(request, template, {"gateway": gateway, "api_key": api_key, "secret": secret})
            response["Cache-Control"] = "no-store"
            return response
    else:
        form = GatewayCreateForm(groups=groups, initial={"resource_group": groups.first()})
    template = "gateway/gateway_create.html" + ("#form" if _partial(request) else "")
    step = form.first_error_step() if form.errors else 1
    response = render(request, template, {"form": form, "step": step})
    patch_vary_headers(response, ["HX-Request"])
    return response


@login_required
def gateway_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A gateway's details page with the tabs Basic information and Logs."""
    gateway = get_object_or_404(gateways_for(request.user).select_related("resource_group"), pk=pk)
    tab = request.GET.get("tab", "basic")
    if tab not in TABS:
        tab = "basic"
    context = {
        "gateway": gateway,
        "tab": tab,
        "tabs": TABS,
        "can_manage": can(request.user, Action.MANAGE_GATEWAYS, gateway.resource_group),
    }
    if tab == "basic":
        quota = TokenQuota.objects.filter(gateway=gateway).first()
        context["quota"] = quota
        if quota is not None:
            used = tokens_used(gateway=gateway, since=window_start(quota.refresh_period, timezone.now()))
            context["quota_used"] = used
            context["quota_percent"] = min(100, round(100 * used / quota.limit_tokens))
        context["api_keys"] = gateway.api_keys.order_by("-created_at")
    else:
        context["events"] = usage_events_latest(gateway=gateway)
    template = "gateway/gateway_detail.html#tabs" if _partial(request) else "gateway/gateway_detail.html"
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


def _partial(request: HttpRequest) -> bool:
    """True for an htmx request that swaps part of a page (not a history restore, which needs
    the whole page)."""
    return bool(request.htmx) and not request.htmx.history_restore_request
