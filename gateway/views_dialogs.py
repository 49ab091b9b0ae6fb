"""Console views of the gateway details dialogs: Manage expiration, Duplicate, Enable/Disable,
Delete. SPEC §2. (Manage token quota is `quotas.views.gateway_token_quota`; the API key dialogs
are in `keys.views`.)

Every action works twice: as a plain page without JavaScript (GET its form, POST, redirect with a
Django message) and as a dialog with htmx (GET its body; POST answers the body again with inline
errors, or closes the dialog with a toast and refreshes the page region, `aigw:refresh`).
Reads go through the permission policy, writes through services.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from core.errors import ApplicationError, add_service_errors
from core.htmx import (
    announce_change,
    close_dialog,
    is_partial,
    render_dialog,
    render_secret_once,
)
from core.permissions import Action
from gateway.forms_dialogs import DeleteForm, DuplicateForm, ManageExpirationForm
from gateway.models import GatewayStatus
from gateway.selectors import gateway_to_manage
from gateway.services import copy_name, gateway_delete, gateway_update
from gateway.setup import gateway_duplicate
from keys.forms import ExpiryForm
from keys.models import ApiKeyStatus
from keys.selectors import api_keys_for
from keys.services import api_key_update

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
