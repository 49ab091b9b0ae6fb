"""Console views (HTML, django-htmx). Reads go through selectors and the permission policy,
writes through services."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, Sum
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import trigger_client_event

from core.errors import ApplicationError, add_service_errors
from core.htmx import is_partial, save_form
from core.permissions import Action, User, can, gateways_for, groups_for, policy_for
from gateway.forms import (
    GatewayCreateForm,
    GatewayModelsForm,
)
from gateway.models import Gateway, Model
from gateway.selectors import gateway_to_manage
from gateway.services import gateway_update
from gateway.setup import gateway_create as create_gateway
from keys.models import ApiKeyStatus
from keys.selectors import api_keys_for
from keys.views import keys_tab_context
from quotas.models import RefreshPeriod, TokenQuota
from quotas.periods import window_start
from quotas.views import limits_context, percent_of
from usage.models import UsageEvent
from usage.selectors import tokens_used, usage_events_latest, usage_summary

# The details page's tabs, in SPEC §2's order (Basic information opens first).
TABS = {
    "logs": "Logs",
    "analysis": "Data analysis",
    "basic": "Basic information",
    "keys": "API keys",
    "limits": "Limits",
}
# Tabs that show usage: only for users with Action.VIEW_USAGE in the gateway's group (not viewers).
USAGE_TABS = frozenset({"logs", "analysis"})
USAGE_DENIED = "Logs and data analysis need the owner, admin, developer or auditor role in the resource group."
MODELS_SAVED = "Models saved."


GATEWAY_STATUS_FILTERS = {"enabled": "Enabled", "disabled": "Disabled"}


@dataclass(frozen=True)
class GatewayUsage:
    """A gateway's usage in the current UTC month: requests, tokens (every type) and USD."""

    requests: int = 0
    tokens: int = 0
    cost_usd: Decimal = Decimal(0)


def _usage_this_month(user: User, gateway_ids: list[int], now: datetime) -> dict[int, GatewayUsage]:
    """`{gateway id: GatewayUsage}` since 00:00 UTC on the 1st, in one grouped query, of the
    gateways whose usage `user` may read (`Action.VIEW_USAGE`); others are left out."""
    if not gateway_ids:
        return {}
    rows = (
        UsageEvent.objects.restrict(user, Action.VIEW_USAGE)
        .filter(gateway_id__in=gateway_ids, created_at__gte=window_start(RefreshPeriod.MONTHLY, now))
        .values("gateway_id")
        .annotate(requests=Sum("requests"), tokens=Sum("total_tokens"), cost=Sum("cost_usd"))
    )
    return {
        row["gateway_id"]: GatewayUsage(row["requests"] or 0, row["tokens"] or 0, row["cost"] or Decimal(0))
        for row in rows
    }


@login_required
def gateway_list(request: HttpRequest) -> HttpResponse:
    """The live gateways the user may see, by resource group, with their active keys and this
    month's usage (only where the user may read usage: `None` for a viewer's). Filters in the
    URL, so a view can be shared: `?group=<id>`, `?q=<name part>`, `?status=enabled|disabled`;
    htmx requests get the table alone."""
    groups = list(groups_for(request.user).order_by("name"))
    gateways = (
        gateways_for(request.user)
        .select_related("resource_group")
        .annotate(active_keys=Count("api_keys", filter=Q(api_keys__status=ApiKeyStatus.ACTIVE)))
        .order_by("resource_group__name", "name")
    )
    group_id = request.GET.get("group", "")
    selected_group = next((g for g in groups if str(g.pk) == group_id), None)
    if selected_group is not None:
        gateways = gateways.filter(resource_group=selected_group)
    query = request.GET.get("q", "").strip()[:100]
    if query:
        gateways = gateways.filter(name__icontains=query)
    status = request.GET.get("status", "")
    if status in GATEWAY_STATUS_FILTERS:
        gateways = gateways.filter(status=status)
    rows = list(gateways)
    now = timezone.now()
    policy = policy_for(request.user)
    usage = _usage_this_month(request.user, [g.pk for g in rows], now)
    for gateway in rows:
        readable = policy.can(Action.VIEW_USAGE, gateway.resource_group_id)
        gateway.usage = usage.get(gateway.pk, GatewayUsage()) if readable else None  # type: ignore[attr-defined]
    context = {
        "gateways": rows,
        "groups": groups,
        "selected_group": selected_group,
        "query": query,
        "status": status if status in GATEWAY_STATUS_FILTERS else "",
        "statuses": GATEWAY_STATUS_FILTERS,
        "filtered": bool(selected_group or query or status in GATEWAY_STATUS_FILTERS),
        "month": window_start(RefreshPeriod.MONTHLY, now),
        "can_create": groups_for(request.user, Action.MANAGE_GATEWAYS).exists(),
    }
    template = "gateway/gateway_list.html" + ("#table" if is_partial(request) else "")
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


# The service's field names, as named in the Create AI Gateway form.
CREATE_FORM_FIELDS = {"limit_usd": "spend_budget_usd", "refresh_period": "spend_budget_refresh_period"}


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
            try:
                # The service checks the name (`gateway_name_check`'s rule) and every limit.
                gateway, api_key, secret = create_gateway(
                    resource_group=data["resource_group"],
                    name=data["name"],
                    created_by=request.user,
                    token_quota=None if data["unlimited_quota"] else data["token_quota"],
                    expires_at=data["expires_at"],
                    spend_budget_usd=data["spend_budget_usd"],
                    spend_budget_refresh_period=data["spend_budget_refresh_period"] or RefreshPeriod.NONE,
                    tokens_per_minute=data["tokens_per_minute"],
                )
            except ApplicationError as error:
                add_service_errors(form, error, CREATE_FORM_FIELDS)
            else:
                # The secret is in this response only: never cache it, never store it.
                template = "gateway/gateway_create.html" + ("#created" if is_partial(request) else "")
                response = render(request, template, {"gateway": gateway, "api_key": api_key, "secret": secret})
                response["Cache-Control"] = "no-store"
                return response
    else:
        form = GatewayCreateForm(groups=groups, initial={"resource_group": groups.first()})
    template = "gateway/gateway_create.html" + ("#form" if is_partial(request) else "")
    step = form.first_error_step() if form.errors else 1
    response = render(request, template, {"form": form, "step": step})
    patch_vary_headers(response, ["HX-Request"])
    return response


@login_required
def gateway_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A gateway's details page with the tabs Logs, Data analysis, Basic information, API keys and
    Limits (`?tab=`; htmx requests get the tabs alone). Logs and Data analysis need
    `Action.VIEW_USAGE`: a viewer does not see them and gets 403 at their URLs."""
    gateway = get_object_or_404(gateways_for(request.user).select_related("resource_group"), pk=pk)
    tab = request.GET.get("tab", "basic")
    if tab not in TABS:
        tab = "basic"
    if tab in USAGE_TABS and not can(request.user, Action.VIEW_USAGE, gateway.resource_group):
        raise PermissionDenied(USAGE_DENIED)
    return render_detail(request, gateway, tab)


def _tabs_for(user: User, gateway: Gateway) -> dict[str, str]:
    """The tabs `user` sees on `gateway`'s page: all of them, but Logs and Data analysis only
    with `Action.VIEW_USAGE` in its resource group."""
    if can(user, Action.VIEW_USAGE, gateway.resource_group):
        return TABS
    return {key: label for key, label in TABS.items() if key not in USAGE_TABS}


def _models_context(user: User, gateway: Gateway, form: GatewayModelsForm | None = None) -> dict:
    """The gateway's models as Basic information shows them, and its form for managers."""
    models = list(gateway.allowed_models.order_by("name"))
    context: dict = {"gateway_models": models}
    if can(user, Action.MANAGE_GATEWAYS, gateway.resource_group):
        catalog = Model.objects.restrict(user).order_by("name")
        context["models_form"] = form or GatewayModelsForm(
            catalog=catalog, initial={"all_models": gateway.all_models, "models": models}
        )
    return context


def render_detail(request: HttpRequest, gateway: Gateway, tab: str, **extra) -> HttpResponse:
    """The details page of `gateway` at `tab` (one of TABS), the tabs alone for htmx. `extra`
    goes to the tab's context: `models_form` (Basic information), `bound` and `saved` (Limits,
    `quotas.views.limits_context`)."""
    user = request.user
    can_view_usage = can(user, Action.VIEW_USAGE, gateway.resource_group)
    context = {
        "gateway": gateway,
        "tab": tab,
        "tabs": _tabs_for(user, gateway),
        "can_manage": can(user, Action.MANAGE_GATEWAYS, gateway.resource_group),
        "can_create_keys": can(user, Action.CREATE_KEYS, gateway.resource_group),
        "can_view_usage": can_view_usage,
    }
    if tab == "basic":
        quota = TokenQuota.objects.restrict(user).filter(gateway=gateway).first()
        context["quota"] = quota
        if quota is not None and can_view_usage:
            since = window_start(quota.refresh_period, timezone.now())
            used = tokens_used(gateway=gateway, since=since, user=user)
            context["quota_used"] = used
            context["quota_percent"] = percent_of(used, quota.limit_tokens)
        context["api_keys"] = api_keys_for(user).filter(gateway=gateway).order_by("-created_at")
        context.update(_models_context(user, gateway, extra.get("models_form")))
    elif tab == "keys":
        context.update(keys_tab_context(user, gateway))
    elif tab == "limits":
        context.update(limits_context(user, gateway, **extra))
    elif tab == "analysis":
        now = timezone.now()
        since = window_start(RefreshPeriod.MONTHLY, now)
        context["summary"] = usage_summary(gateway=gateway, since=since, until=now, user=user)
    else:
        context["events"] = usage_events_latest(gateway=gateway, user=user)
    template = "gateway/gateway_detail.html#tabs" if is_partial(request) else "gateway/gateway_detail.html"
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


# Basic information: the gateway's models (owners and admins choose them from the catalog).


@login_required
@require_POST
def gateway_models_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """Save the gateway's models (`gateway.services.gateway_update`): All models, or exactly the
    chosen ones; none chosen serves no model (never all). htmx gets the tabs back, with a
    toast; other clients are redirected to Basic information."""
    gateway = gateway_to_manage(request.user, pk)
    form = GatewayModelsForm(request.POST, catalog=Model.objects.restrict(request.user).order_by("name"))
    saved = save_form(
        form, lambda data: gateway_update(gateway=gateway, all_models=data["all_models"], models=data["models"])
    )
    if saved and not is_partial(request):
        messages.success(request, MODELS_SAVED)
        return redirect(reverse("gateway-detail", args=[gateway.pk]) + "?tab=basic")
    response = render_detail(request, gateway, "basic", models_form=None if saved else form)
    if saved:
        trigger_client_event(response, "aigw:toast", {"message": MODELS_SAVED})
    return response


# Helpers.
