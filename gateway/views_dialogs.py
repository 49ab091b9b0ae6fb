"""Console views of the gateway details dialogs (Manage expiration, Duplicate, Enable/Disable,
Delete; Manage token quota is `quotas.views.gateway_token_quota`) and of API keys (the
cross-gateway API keys page; Create, Edit, Rotate, Revoke). SPEC §2.

Every action works twice: as a plain page without JavaScript (GET its form, POST, redirect with a
Django message) and as a dialog with htmx (GET its body; POST answers the body again with inline
errors, or closes the dialog with a toast and refreshes the page region, `aigw:refresh`).
Reads go through the permission policy, writes through services.
"""

from __future__ import annotations

from dataclasses import dataclass

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from core.errors import ApplicationError, add_service_errors
from core.htmx import (
    announce_change,
    close_dialog,
    is_partial,
    render_dialog,
    render_secret_once,
    safe_next_url,
)
from core.permissions import Action, can, can_change_api_key, gateways_for, groups_for, policy_for
from gateway.forms_dialogs import (
    ApiKeyCreateForm,
    ApiKeyEditForm,
    DeleteForm,
    DuplicateForm,
    ExpiryForm,
    ManageExpirationForm,
)
from gateway.models import Gateway, GatewayStatus
from gateway.selectors import gateway_to_manage
from gateway.services import copy_name, gateway_delete, gateway_update
from gateway.setup import gateway_duplicate
from gateway.views import KeyRow, spend_budget_of
from keys.filters import ApiKeyFilterSet
from keys.models import ApiKey, ApiKeyStatus
from keys.selectors import api_key_for, api_keys_for
from keys.services import api_key_create, api_key_revoke, api_key_rotate, api_key_update
from quotas.selectors import spend_by_api_key
from quotas.services import spend_budget_set

KEY_DENIED = "Only owners and admins of the resource group, or the developer who created it, may change this API key."
CREATE_KEYS_DENIED = "Auditors and viewers cannot create API keys."
ALREADY_REVOKED = "This API key is already revoked."
BUDGET_DENIED = "Only owners and admins of the gateway's resource group can give its API keys a budget."
ROTATE_REVOKED = "A revoked API key cannot be rotated. Create a new API key instead."
KEYS_PER_PAGE = 50


# Helpers of the API key dialogs.


def _keys_tab(gateway: Gateway) -> str:
    return reverse("gateway-detail", args=[gateway.pk]) + "?tab=keys"


def _api_key_to_change(request: HttpRequest, key_pk: int) -> ApiKey:
    """The API key, if the user may change it: 404 when its gateway is not visible to the user
    (another group, or deleted), 403 when the role does not allow it (`can_change_api_key`)."""
    api_key = api_key_for(request.user, key_pk)
    if api_key is None:
        raise Http404("No such API key.")
    if not can_change_api_key(request.user, api_key):
        raise PermissionDenied(KEY_DENIED)
    return api_key


# Gateway details: header actions.


@login_required
@require_http_methods(["GET", "POST"])
def gateway_expiration(request: HttpRequest, pk: int) -> HttpResponse:
    """Manage expiration: a new expiry for one of the gateway's API keys (7/30/60/90 days,
    Long-lived, or a custom UTC date-time). `?key=<id>` preselects a key."""
    gateway = gateway_to_manage(request.user, pk)
    api_keys = api_keys_for(request.user, Action.MANAGE_GATEWAYS).filter(gateway=gateway)
    if request.method == "POST":
        form = ManageExpirationForm(request.POST, api_keys=api_keys)
        if form.is_valid():
            data = form.cleaned_data
            api_key = data["api_key"]
            try:
                api_key_update(api_key=api_key, expires_at=data["expires_at"], clear_expiry=data["expires_at"] is None)
            except ApplicationError as error:
                add_service_errors(form, error)
            else:
                detail = reverse("gateway-detail", args=[gateway.pk])
                return close_dialog(request, f"Expiration of {api_key.name} saved.", "expiration-dialog", detail)
    else:
        form = ManageExpirationForm(api_keys=api_keys)
        choices = list(form.fields["api_key"].queryset)  # type: ignore[attr-defined]
        selected = next((k for k in choices if str(k.pk) == request.GET.get("key")), choices[0] if choices else None)
        form.initial = {"api_key": selected, **ExpiryForm.initial_for(selected)}
    context = {"gateway": gateway, "form": form, "now": timezone.now()}
    return render_dialog(request, "gateway/dialogs/expiration.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def gateway_duplicate_view(request: HttpRequest, pk: int) -> HttpResponse:
    """Duplicate: the same configuration under a new name, with a new API key shown once
    (`gateway.setup.gateway_duplicate`)."""
    gateway = gateway_to_manage(request.user, pk)
    if request.method == "POST":
        form = DuplicateForm(request.POST)
        if form.is_valid():
            try:
                copy, api_key, secret = gateway_duplicate(
                    gateway=gateway, name=form.cleaned_data["name"].strip(), created_by=request.user
                )
            except ApplicationError as error:
                add_service_errors(form, error)
            else:
                context = {"gateway": gateway, "copy": copy, "api_key": api_key, "secret": secret}
                message = f"AI gateway {copy.name} created."
                return render_secret_once(request, "gateway/dialogs/duplicate.html", context, message)
    else:
        form = DuplicateForm(initial={"name": copy_name(gateway)})
    return render_dialog(request, "gateway/dialogs/duplicate.html", {"gateway": gateway, "form": form})


@login_required
@require_POST
def gateway_status(request: HttpRequest, pk: int) -> HttpResponse:
    """Enable or disable the gateway (`status=enabled|disabled`); a disabled gateway refuses
    every request of its API keys. htmx gets the page head back, with a toast.

    Answers 400 for any other status (the service's rule, `gateway_update`)."""
    gateway = gateway_to_manage(request.user, pk)
    wanted = request.POST.get("status", "")
    try:
        gateway_update(gateway=gateway, status=wanted)
    except ApplicationError as error:
        return HttpResponseBadRequest(error.message)
    if wanted == GatewayStatus.ENABLED:
        message = f"{gateway.name} is enabled: its API keys work again."
    else:
        message = f"{gateway.name} is disabled: requests with its API keys are refused."
    if not is_partial(request):
        messages.success(request, message)
        return redirect("gateway-detail", pk=gateway.pk)
    context = {
        "gateway": gateway,
        "can_manage": True,
        "can_create_keys": True,
    }
    response = render(request, "gateway/gateway_detail.html#gateway-head", context)
    announce_change(response, message)  # the tabs show the status too
    return response


@login_required
@require_http_methods(["GET", "POST"])
def gateway_delete_view(request: HttpRequest, pk: int) -> HttpResponse:
    """Delete, confirmed by typing the gateway's name: all its keys stop working at once; its
    usage and audit records stay (`gateway.services.gateway_delete`). Then the gateway list."""
    gateway = gateway_to_manage(request.user, pk)
    if request.method == "POST":
        form = DeleteForm(request.POST, gateway=gateway)
        if form.is_valid():
            gateway_delete(gateway=gateway)
            messages.success(request, f"AI gateway {gateway.name} deleted. Its API keys stopped working.")
            if is_partial(request):
                return HttpResponseClientRedirect(reverse("gateway-list"))
            return redirect("gateway-list")
    else:
        form = DeleteForm(gateway=gateway)
    live_keys = api_keys_for(request.user).filter(gateway=gateway).exclude(status=ApiKeyStatus.REVOKED).count()
    return render_dialog(
        request, "gateway/dialogs/delete.html", {"gateway": gateway, "form": form, "live_keys": live_keys}
    )


# API keys: create, edit, rotate, revoke.


@login_required
@require_http_methods(["GET", "POST"])
def api_key_create_view(request: HttpRequest, pk: int) -> HttpResponse:
    """Create API key on a gateway: name, expiry and (owners and admins only) an optional spend
    budget; the secret is shown once. Developers may create keys too (SPEC §1)."""
    gateway = get_object_or_404(gateways_for(request.user).select_related("resource_group"), pk=pk)
    if not can(request.user, Action.CREATE_KEYS, gateway.resource_group):
        raise PermissionDenied(CREATE_KEYS_DENIED)
    with_budget = can(request.user, Action.MANAGE_GATEWAYS, gateway.resource_group)
    form = ApiKeyCreateForm(request.POST if request.method == "POST" else None, with_budget=with_budget)
    return _create_key(request, form, gateway, reverse("api-key-create", args=[gateway.pk]))


@login_required
@require_http_methods(["GET", "POST"])
def api_key_create_any(request: HttpRequest) -> HttpResponse:
    """Create API key from the API keys page: the same dialog with a gateway picker (the live
    gateways where the user may create keys; 403 when there is none). A budget is offered to
    users who manage some group, and refused on a gateway of a group they do not manage."""
    gateways = gateways_for(request.user, Action.CREATE_KEYS).select_related("resource_group")
    if not gateways.exists():
        raise PermissionDenied(CREATE_KEYS_DENIED)
    managed = set(groups_for(request.user, Action.MANAGE_GATEWAYS).values_list("pk", flat=True))
    form = ApiKeyCreateForm(
        request.POST if request.method == "POST" else None,
        with_budget=bool(managed),
        gateways=gateways.order_by("resource_group__name", "name"),
        initial={"gateway": request.GET.get("gateway")},
    )
    gateway = None
    if form.is_valid():
        gateway = form.cleaned_data["gateway"]
        if form.cleaned_data["limit_usd"] is not None and gateway.resource_group_id not in managed:
            form.add_error("limit_usd", BUDGET_DENIED)
    return _create_key(request, form, gateway, reverse("api-key-create-any"))


def _create_key(request: HttpRequest, form: ApiKeyCreateForm, gateway: Gateway | None, action: str) -> HttpResponse:
    """Create the key (and its budget) in one transaction once `form` is valid; else the form."""
    next_url = safe_next_url(request, _keys_tab(gateway) if gateway else reverse("api-key-list"))
    if request.method == "POST" and gateway is not None and form.is_valid():
        data = form.cleaned_data
        try:
            with transaction.atomic():
                api_key, secret = api_key_create(
                    gateway=gateway, name=data["name"].strip(), expires_at=data["expires_at"], created_by=request.user
                )
                if data["limit_usd"] is not None:
                    spend_budget_set(
                        limit_usd=data["limit_usd"],
                        refresh_period=data["refresh_period"],
                        mode=data["mode"],
                        api_key=api_key,
                    )
        except ApplicationError as error:
            add_service_errors(form, error)
        else:
            context = {"gateway": gateway, "api_key": api_key, "secret": secret, "next": next_url}
            message = f"API key {api_key.name} created."
            return render_secret_once(request, "gateway/dialogs/api_key_create.html", context, message)
    context = {"gateway": gateway, "form": form, "next": next_url, "action": action}
    return render_dialog(request, "gateway/dialogs/api_key_create.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def api_key_edit(request: HttpRequest, key_pk: int) -> HttpResponse:
    """Edit an API key: its name and expiry (`keys.services.api_key_update`). Its spend budget
    has its own dialog (Edit budget)."""
    api_key = _api_key_to_change(request, key_pk)
    next_url = safe_next_url(request, _keys_tab(api_key.gateway))
    if request.method == "POST":
        form = ApiKeyEditForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                api_key = api_key_update(
                    api_key=api_key,
                    name=data["name"].strip(),
                    expires_at=None if data["keep_expiry"] else data["expires_at"],
                    clear_expiry=not data["keep_expiry"] and data["expires_at"] is None,
                )
            except ApplicationError as error:
                add_service_errors(form, error)
            else:
                return close_dialog(request, f"API key {api_key.name} saved.", "key-edit-dialog", next_url)
    else:
        form = ApiKeyEditForm(initial={"name": api_key.name})
    context = {"api_key": api_key, "gateway": api_key.gateway, "form": form, "next": next_url}
    return render_dialog(request, "gateway/dialogs/api_key_edit.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def api_key_rotate_view(request: HttpRequest, key_pk: int) -> HttpResponse:
    """Rotate: confirm (GET), then a new secret shown once (POST); the old secret stops working
    (`keys.services.api_key_rotate`). A revoked key cannot be rotated (an inline error)."""
    api_key = _api_key_to_change(request, key_pk)
    next_url = safe_next_url(request, _keys_tab(api_key.gateway))
    error = None
    if request.method == "POST":
        try:
            api_key, secret = api_key_rotate(api_key=api_key)
        except ApplicationError as refused:
            form = forms.Form({})  # a confirmation has no fields: the service's sentence goes above it
            form.is_valid()
            add_service_errors(form, refused)
            error = " ".join(str(message) for message in form.non_field_errors())
        else:
            context = {"api_key": api_key, "gateway": api_key.gateway, "secret": secret, "next": next_url}
            message = f"API key {api_key.name} rotated."
            return render_secret_once(request, "gateway/dialogs/api_key_rotate.html", context, message)
    elif api_key.status == ApiKeyStatus.REVOKED:
        error = ROTATE_REVOKED
    context = {"api_key": api_key, "gateway": api_key.gateway, "error": error, "next": next_url}
    return render_dialog(request, "gateway/dialogs/api_key_rotate.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def api_key_revoke_view(request: HttpRequest, key_pk: int) -> HttpResponse:
    """Revoke: confirm (GET), then revoke at once (POST, `keys.services.api_key_revoke`).
    A key revoked meanwhile is said so inline."""
    api_key = _api_key_to_change(request, key_pk)
    next_url = safe_next_url(request, _keys_tab(api_key.gateway))
    error = ALREADY_REVOKED if api_key.status == ApiKeyStatus.REVOKED else None
    if request.method == "POST" and error is None:
        api_key_revoke(api_key=api_key)
        message = f"API key {api_key.name} revoked. Requests with it are refused."
        return close_dialog(request, message, "key-revoke-dialog", next_url)
    context = {"api_key": api_key, "gateway": api_key.gateway, "error": error, "next": next_url}
    return render_dialog(request, "gateway/dialogs/api_key_revoke.html", context)


# The API keys page (Vercel's): every key of the gateways the user may see.

STATUS_FILTERS = {status.value: status.label for status in ApiKeyStatus}


@dataclass(frozen=True, slots=True)
class ApiKeyListRow:
    """One row of the API keys page: the key as the API keys tab shows it, and what the user may
    do with it (`can_change`: edit, rotate, revoke; `can_edit_budget`: owners and admins)."""

    row: KeyRow
    can_change: bool
    can_edit_budget: bool


@login_required
def api_key_list(request: HttpRequest) -> HttpResponse:
    """Every API key of the live gateways the user may see, newest first, with its budget line
    (`$1.04 / $10 spent · monthly` or `Unlimited quota`). Filters in the URL: `?gateway=<id>`,
    `?status=active|suspended|expired|revoked` (effective status), `?q=<name or prefix>` (the
    FilterSet of `GET /api/v1/api-keys`, `keys.filters.ApiKeyFilterSet`), `?page=`; htmx
    requests get the table alone. A fixed number of queries per page, whatever
    the number of keys."""
    user = request.user
    gateways = list(gateways_for(user).select_related("resource_group").order_by("resource_group__name", "name"))
    keys = api_keys_for(user).select_related("gateway", "spend_budget")
    filters = ApiKeyFilterSet(request.GET, queryset=keys)
    if not filters.is_valid():  # the page ignores a filter it cannot read, as if it were absent
        filters = ApiKeyFilterSet(
            {name: value for name, value in request.GET.items() if name not in filters.errors}, queryset=keys
        )
        filters.is_valid()
    chosen = filters.form.cleaned_data
    selected_gateway = next((g for g in gateways if str(g.pk) == chosen.get("gateway")), None)
    query = (chosen.get("q") or "").strip()
    status = chosen.get("status") or ""
    page = Paginator(filters.qs.order_by("-created_at", "-id"), KEYS_PER_PAGE).get_page(request.GET.get("page"))
    api_keys = list(page.object_list)

    now = timezone.now()
    budgets = [b for b in (spend_budget_of(k) for k in api_keys) if b is not None and b.enforced]
    spent = spend_by_api_key(budgets=budgets, now=now)
    policy = policy_for(user)
    rows = []
    for api_key in api_keys:
        group_id = api_key.gateway.resource_group_id
        managed = policy.can(Action.MANAGE_GATEWAYS, group_id)
        own = api_key.created_by_id is not None and api_key.created_by_id == user.pk
        can_change = managed or (own and policy.can(Action.CREATE_KEYS, group_id))
        rows.append(ApiKeyListRow(KeyRow.of(api_key, now, spent.get(api_key.pk)), can_change, managed))
    creating = policy.can_anywhere(Action.CREATE_KEYS)
    can_create_here = selected_gateway is not None and policy.can(
        Action.CREATE_KEYS, selected_gateway.resource_group_id
    )

    context = {
        "rows": rows,
        "page": page,
        "gateways": gateways,
        "selected_gateway": selected_gateway,
        "query": query,
        "status": status,
        "statuses": STATUS_FILTERS,
        "filtered": bool(selected_gateway or query or status),
        "can_act": creating,
        "can_create_here": can_create_here,
        "can_create_any": creating and bool(gateways),
        "can_manage_any": policy.can_anywhere(Action.MANAGE_GATEWAYS),
    }
    template = "keys/api_key_list.html" + ("#table" if is_partial(request) else "")
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request"])
    return response
