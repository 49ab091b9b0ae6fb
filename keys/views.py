"""Console views of API keys and of personal API tokens. SPEC §2.

API keys: the cross-gateway API keys page, the API keys tab of the gateway details page
(`keys_tab_context`; the page itself is `gateway.views.gateway_detail`), and the key dialogs:
Create, Edit, Rotate, Revoke and Edit budget. Each dialog works twice, as a plain page without
JavaScript and as a dialog with htmx (`core.htmx`). Personal API tokens: the signed-in user's
management API credentials.

Reads go through the permission policy, writes through services (`keys.services`, and
`quotas.services` for a key's spend budget).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import trigger_client_event

from core.errors import ApplicationError, add_service_errors
from core.htmx import close_dialog, is_partial, render_dialog, render_secret_once, safe_next_url, save_form
from core.permissions import Action, User, can, can_change_api_key, gateways_for, groups_for, policy_for
from gateway.models import Gateway
from gateway.selectors import gateway_to_manage
from keys.filters import ApiKeyFilterSet
from keys.forms import ApiKeyBudgetForm, ApiKeyCreateForm, ApiKeyEditForm, ApiTokenForm
from keys.models import ApiKey, ApiKeyStatus
from keys.selectors import api_key_for, api_keys_for, api_tokens_of
from keys.services import (
    api_key_create,
    api_key_revoke,
    api_key_rotate,
    api_key_update,
    api_token_create,
    api_token_revoke,
)
from quotas.models import Level, SpendBudget
from quotas.periods import window_start
from quotas.selectors import spend_by_api_key, used_in_window
from quotas.services import spend_budget_set
from quotas.views import budget_line, percent_of, spend_budget_save

# Personal API tokens.


def _page(request: HttpRequest, form: ApiTokenForm, secret: str | None = None, status: int = 200) -> HttpResponse:
    tokens = api_tokens_of(request.user)
    context = {"form": form, "tokens": tokens, "secret": secret, "now": timezone.now()}
    return render(request, "keys/api_tokens.html", context, status=status)


@login_required
def api_token_list(request: HttpRequest) -> HttpResponse:
    """`GET` the user's tokens with the create form; `POST` creates one and shows it once.

    The console posts with htmx and swaps the answer in place, so the page's URL stays a GET:
    reloading it shows the token list, never the secret again and never a second token."""
    if request.method == "POST":
        form = ApiTokenForm(request.POST)
        if not form.is_valid():
            # htmx swaps only 2xx answers; a plain form post gets the 400 it deserves.
            return _page(request, form, status=200 if getattr(request, "htmx", False) else 400)
        _, secret = api_token_create(
            user=request.user, name=form.cleaned_data["name"], expires_at=form.cleaned_data["expires_at"]
        )
        return _page(request, ApiTokenForm(), secret=secret)
    return _page(request, ApiTokenForm())


@login_required
@require_POST
def api_token_revoke_view(request: HttpRequest, pk: int) -> HttpResponse:
    """Revoke one of the user's own tokens (another user's token is a 404)."""
    token = get_object_or_404(api_tokens_of(request.user), pk=pk)
    api_token_revoke(token=token)
    messages.success(request, f"Token “{token.name}” is revoked.")
    return redirect("api-token-list")


# API keys.

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


# The API keys tab of the gateway details page, and the Edit budget dialog.


@dataclass(frozen=True, slots=True)
class KeyRow:
    """One API key as the API keys tab shows it, with its spend budget in Vercel's words."""

    api_key: ApiKey
    status: str
    budget: SpendBudget | None  # the key's budget, archived or not
    budget_line: str  # `$1.04 / $10 spent · monthly`, or `Unlimited quota`
    budget_percent: int | None  # None when no budget is enforced

    @classmethod
    def of(cls, api_key: ApiKey, now: datetime, spent: Decimal | None = None) -> KeyRow:
        """`spent`: the key's cost in its budget's current window, when already known."""
        budget = spend_budget_of(api_key)
        status = api_key.effective_status(now)
        if budget is None or not budget.enforced:
            return cls(api_key, status, budget, "Unlimited quota", None)
        if spent is None:
            since = window_start(budget.refresh_period, now)
            spent = used_in_window(level=Level.API_KEY, entity_id=api_key.pk, since=since).usd
        return cls(api_key, status, budget, budget_line(spent, budget), percent_of(spent, budget.limit_usd))

    @property
    def budget_paused(self) -> bool:
        """A budget kept but not enforced (inactive); archived budgets are simply gone."""
        return self.budget is not None and self.budget.archived_at is None and not self.budget.active


def keys_tab_context(user: User, gateway: Gateway) -> dict:
    """What the API keys tab of `gateway`'s details page shows: `key_rows`, a `KeyRow` for each
    key of the gateway that `user` may see, newest first (the spend of every enforced budget in
    one query), and `keys_next`, the tab's URL, where the key dialogs go back to."""
    now = timezone.now()
    keys = api_keys_for(user).filter(gateway=gateway).select_related("spend_budget")
    api_keys = list(keys.order_by("-created_at"))
    budgets = [b for b in (spend_budget_of(k) for k in api_keys) if b is not None and b.enforced]
    spent = spend_by_api_key(budgets=budgets, now=now)
    return {
        "key_rows": [KeyRow.of(api_key, now, spent.get(api_key.pk)) for api_key in api_keys],
        "keys_next": _keys_tab(gateway),
    }


@login_required
@require_http_methods(["GET", "POST"])
def api_key_budget_edit(request: HttpRequest, pk: int, key_pk: int) -> HttpResponse:
    """The Edit budget dialog of one API key (GET: its form; POST: save it through
    `quotas.services.spend_budget_set`). 404 for a gateway or key the user may not see, 403 for
    members who may not manage the gateway (`gateway_to_manage`)."""
    gateway = gateway_to_manage(request.user, pk)
    keys = api_keys_for(request.user, Action.MANAGE_GATEWAYS).filter(gateway=gateway).select_related("spend_budget")
    api_key = get_object_or_404(keys, pk=key_pk)
    budget = spend_budget_of(api_key)
    if request.method == "POST":
        form = ApiKeyBudgetForm(request.POST)
        if save_form(form, lambda data: spend_budget_save(data, api_key=api_key)):
            message = f"Budget of {api_key.name} saved."
            if not is_partial(request):
                messages.success(request, message)
                return redirect(_keys_tab(gateway))
            row = KeyRow.of(keys.get(pk=api_key.pk), timezone.now())
            response = render(request, "gateway/gateway_detail.html#key-budget-saved", {"row": row, "oob": True})
            trigger_client_event(response, "aigw:close-dialog", {"id": "budget-dialog"}, after="settle")
            trigger_client_event(response, "aigw:toast", {"message": message}, after="settle")
            return response
    else:
        form = ApiKeyBudgetForm(initial=ApiKeyBudgetForm.initial_for(budget))
    context = {"gateway": gateway, "api_key": api_key, "form": form}
    template = "gateway/api_key_budget.html" + ("#form" if is_partial(request) else "")
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


def spend_budget_of(api_key: ApiKey) -> SpendBudget | None:
    """The key's own spend budget (archived or not), or None."""
    try:
        return api_key.spend_budget
    except ObjectDoesNotExist:
        return None
