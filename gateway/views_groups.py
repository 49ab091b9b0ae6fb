"""Console pages of resource groups and their members, providers and their models (SPEC §1, §2).

The rules are the API's (`gateway.api_groups`) through the one policy of `core.permissions`:
any signed-in user may create a group and becomes its owner; owners rename, delete and manage
members; only platform admins (is_staff) manage providers, credentials and models, and only they
test a provider's connection; every signed-in user reads the catalog (never a credential).
Another group is a 404; a change the role may not make is a 403. Every change goes through
`gateway.services`, which holds the rules, raises the `core.errors` family and writes the
audit trail. Forms post plainly (redirect and a message) and with htmx (the page region comes
back, errors inline).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.forms import Form
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect, trigger_client_event

from core.errors import ApplicationError, add_service_errors
from core.htmx import is_partial
from core.permissions import Action, can, policy_for, require
from gateway.forms_groups import (
    GroupDeleteForm,
    GroupNameForm,
    InviteForm,
    ModelForm,
    ProviderForm,
    RoleForm,
)
from gateway.models import Membership, Model, Provider, ProviderKind, ResourceGroup, Role
from gateway.pricing import Prices, default_prices
from gateway.provider_check import provider_test_connection
from gateway.services import (
    membership_add,
    membership_remove,
    membership_set,
    model_create,
    model_delete,
    model_update,
    provider_create,
    provider_delete,
    provider_update,
    resource_group_create,
    resource_group_delete,
    resource_group_update,
)

# Resource groups ------------------------------------------------------------------------------


def _toast(response: HttpResponse, message: str) -> HttpResponse:
    """Show `message` as a toast once htmx has swapped `response` in (HX-Trigger `aigw:toast`)."""
    trigger_client_event(response, "aigw:toast", {"message": message})
    return response


def _go(request: HttpRequest, message: str, url: str, *, level: int = messages.SUCCESS) -> HttpResponse:
    """After a change that leads to another page: the message on that page, reached by a redirect
    (plain posts) or by htmx's HX-Redirect."""
    messages.add_message(request, level, message)
    return HttpResponseClientRedirect(url) if is_partial(request) else redirect(url)


def _failed(forms: dict[str, Any]) -> bool:
    return any(isinstance(f, Form) and f.errors for f in forms.values()) or any(
        forms.get(key) for key in ("member_error", "delete_error", "model_error")
    )


@login_required
def group_list(request: HttpRequest) -> HttpResponse:
    """The user's resource groups with their role, gateways and members; POST creates one (the
    user becomes its owner). htmx gets the dialog's form back with its errors, or goes to the
    new group."""
    form = GroupNameForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            group = resource_group_create(name=form.cleaned_data["name"], owner=request.user)
        except ApplicationError as error:
            add_service_errors(form, error, default="name")
        else:
            message = f"Resource group {group.name} created; you are its owner."
            return _go(request, message, reverse("group-detail", args=[group.pk]))
    status = 400 if form.errors else 200
    if request.method == "POST" and is_partial(request):
        return render(request, "groups/group_list.html#create-form", {"form": form}, status=status)
    policy = policy_for(request.user)
    groups = (
        ResourceGroup.objects.restrict(request.user, Action.VIEW_SETTINGS)
        .annotate(
            gateway_count=Count("gateways", filter=Q(gateways__deleted_at__isnull=True), distinct=True),
            member_count=Count("memberships", distinct=True),
        )
        .order_by("name")
    )
    rows = [(group, policy.role_in(group.pk)) for group in groups]
    return render(request, "groups/group_list.html", {"rows": rows, "form": form}, status=status)


def _group(request: HttpRequest, pk: int) -> ResourceGroup:
    return get_object_or_404(ResourceGroup.objects.restrict(request.user, Action.VIEW_SETTINGS), pk=pk)


def _owned_group(request: HttpRequest, pk: int) -> ResourceGroup:
    group = _group(request, pk)
    require(request.user, Action.MANAGE_MEMBERS, group)
    return group


def _member(request: HttpRequest, group: ResourceGroup, user_id: int) -> Membership:
    members = Membership.objects.restrict(request.user, Action.VIEW_SETTINGS).select_related("user")
    return get_object_or_404(members, resource_group=group, user_id=user_id)


@login_required
def group_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A group: its gateways and members; owners also get invite, role, remove, rename, delete."""
    return _group_page(request, _group(request, pk))


def _group_page(request: HttpRequest, group: ResourceGroup, fragment: str = "members", **forms: Any) -> HttpResponse:
    """The group's page, or for htmx its `fragment` (`members`, `rename-form`, `delete-form`,
    `renamed`); 400 when a form (or a member's row) has an error."""
    members = (
        Membership.objects.restrict(request.user, Action.VIEW_SETTINGS)
        .filter(resource_group=group)
        .select_related("user")
        .order_by("user__username")
    )
    context = {
        "group": group,
        "role": policy_for(request.user).role_in(group.pk),
        "is_owner": can(request.user, Action.MANAGE_MEMBERS, group),
        "members": members,
        "gateways": group.gateways.filter(deleted_at__isnull=True).order_by("name"),
        "roles": Role.choices,
        "invite_form": forms.get("invite_form") or InviteForm(),
        "rename_form": forms.get("rename_form") or GroupNameForm(initial={"name": group.name}),
        "delete_form": forms.get("delete_form") or GroupDeleteForm(expected=group.name),
        "member_error": forms.get("member_error"),
    }
    partial = is_partial(request) and request.method == "POST"
    template = "groups/group_detail.html" + (f"#{fragment}" if partial else "")
    response = render(request, template, context, status=400 if _failed(forms) else 200)
    patch_vary_headers(response, ["HX-Request"])
    return response


def _group_changed(request: HttpRequest, group: ResourceGroup, message: str, fragment: str = "members") -> HttpResponse:
    """After a change on the group's page: htmx gets `fragment` and a toast, plain posts the
    page again (redirect) with the message."""
    if not is_partial(request):
        return _go(request, message, reverse("group-detail", args=[group.pk]))
    return _toast(_group_page(request, group, fragment), message)


@login_required
@require_POST
def group_invite(request: HttpRequest, pk: int) -> HttpResponse:
    """Add an existing user to the group with a role (owners)."""
    group = _owned_group(request, pk)
    form = InviteForm(request.POST)
    if form.is_valid():
        try:
            membership = membership_add(
                resource_group=group, user=form.cleaned_data["user"], role=form.cleaned_data["role"]
            )
        except ApplicationError as error:
            add_service_errors(form, error, default="user")
        else:
            return _group_changed(request, group, f"{membership.user.get_username()} added as {membership.role}.")
    return _group_page(request, group, invite_form=form)


@login_required
@require_POST
def member_role(request: HttpRequest, pk: int, user_id: int) -> HttpResponse:
    """Change a member's role (owners); the last owner keeps the owner role. An owner who steps
    down gets the whole page again: its buttons are no longer theirs."""
    group = _owned_group(request, pk)
    membership = _member(request, group, user_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        return _group_page(request, group, member_error="Pick one of the roles.")
    try:
        membership_set(resource_group=group, user=membership.user, role=form.cleaned_data["role"])
    except ApplicationError as error:
        return _group_page(request, group, member_error=" ".join(error.messages))
    message = f"{membership.user.get_username()} is now {form.cleaned_data['role']}."
    if membership.user == request.user:
        return _go(request, message, reverse("group-detail", args=[group.pk]))
    return _group_changed(request, group, message)


@login_required
@require_POST
def member_remove(request: HttpRequest, pk: int, user_id: int) -> HttpResponse:
    """Remove a member (owners); the last owner cannot be removed."""
    group = _owned_group(request, pk)
    membership = _member(request, group, user_id)
    try:
        membership_remove(resource_group=group, user=membership.user)
    except ApplicationError as error:
        return _group_page(request, group, member_error=" ".join(error.messages))
    message = f"{membership.user.get_username()} removed from {group.name}."
    if membership.user == request.user:
        return _go(request, message, reverse("group-list"))
    return _group_changed(request, group, message)


@login_required
@require_POST
def group_rename(request: HttpRequest, pk: int) -> HttpResponse:
    """Rename the group (owners); htmx gets the dialog's form and the name everywhere on the
    page, and the dialog closes."""
    group = _owned_group(request, pk)
    form = GroupNameForm(request.POST)
    if form.is_valid():
        try:
            resource_group_update(resource_group=group, name=form.cleaned_data["name"])
        except ApplicationError as error:
            add_service_errors(form, error, default="name")
        else:
            response = _group_changed(request, group, f"Resource group renamed to {group.name}.", "renamed")
            if is_partial(request):
                trigger_client_event(response, "aigw:close-dialog", {"id": "rename-group-dialog"}, after="settle")
            return response
    return _group_page(request, group, "rename-form", rename_form=form)


@login_required
@require_POST
def group_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """Delete the group (owners), typing its name; a group that holds gateways stays. Then the
    list of groups."""
    group = _owned_group(request, pk)
    form = GroupDeleteForm(request.POST, expected=group.name)
    if form.is_valid():
        try:
            resource_group_delete(resource_group=group)
        except ApplicationError as error:
            add_service_errors(form, error, default="confirm_name")
        else:
            return _go(request, f"Resource group {form.cleaned_data['confirm_name']} deleted.", reverse("group-list"))
    return _group_page(request, group, "delete-form", delete_form=form)


# Providers and models -------------------------------------------------------------------------


def _provider(request: HttpRequest, pk: int) -> Provider:
    return get_object_or_404(Provider.objects.restrict(request.user, Action.VIEW_SETTINGS), pk=pk)


def _managed_provider(request: HttpRequest, pk: int) -> Provider:
    """The provider `pk` for a platform admin; 403 for anyone else (SPEC §1)."""
    provider = _provider(request, pk)
    require(request.user, Action.MANAGE_PROVIDERS)
    return provider


@login_required
def provider_list(request: HttpRequest) -> HttpResponse:
    """Every provider with its kind, base URL, whether a credential is set (never its value) and
    its models; POST adds one (platform admins): htmx gets the dialog's form back with its
    errors, or goes to the new provider."""
    form = ProviderForm(request.POST or None, initial={"kind": ProviderKind.OPENAI})
    if request.method == "POST":
        require(request.user, Action.MANAGE_PROVIDERS)
        if form.is_valid():
            data = form.cleaned_data
            try:
                provider = provider_create(
                    name=data["name"],
                    kind=data["kind"],
                    base_url=data["base_url"],
                    credential=data["credential"],
                    actor=request.user,
                )
            except ApplicationError as error:
                add_service_errors(form, error, default="name")
            else:
                message = f"Provider {provider.name} added. Test its connection, then add models."
                return _go(request, message, reverse("provider-detail", args=[provider.pk]))
        if is_partial(request):
            return render(request, "providers/provider_list.html#add-form", {"form": form}, status=400)
    providers = (
        Provider.objects.restrict(request.user, Action.VIEW_SETTINGS)
        .annotate(model_count=Count("models"))
        .order_by("name")
    )
    context = {"providers": providers, "form": form, "can_manage": can(request.user, Action.MANAGE_PROVIDERS)}
    return render(request, "providers/provider_list.html", context, status=400 if form.errors else 200)


@login_required
def provider_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A provider, its settings form (platform admins) and its models with their prices."""
    return _provider_page(request, _provider(request, pk))


def _provider_page(request: HttpRequest, provider: Provider, fragment: str = "models", **forms: Any) -> HttpResponse:
    """The provider's page, or for htmx its `fragment` (`summary`, `models`, `edit-form`,
    `saved`, `add-model-form`, `model-added`); 400 when a form or a delete has an error."""
    context = {
        "provider": provider,
        "models": Model.objects.restrict(request.user, Action.VIEW_SETTINGS).filter(provider=provider).order_by("name"),
        "can_manage": can(request.user, Action.MANAGE_PROVIDERS),
        "edit_form": forms.get("edit_form")
        or ProviderForm(initial={"name": provider.name, "kind": provider.kind, "base_url": provider.base_url}),
        "model_form": forms.get("model_form") or ModelForm(),
        "model_edit_form": forms.get("model_edit_form"),
        "edited_model": forms.get("edited_model"),
        "delete_error": forms.get("delete_error"),
        "model_error": forms.get("model_error"),
        "is_mock": provider.kind == ProviderKind.MOCK,
    }
    partial = is_partial(request) and request.method == "POST"
    template = "providers/provider_detail.html" + (f"#{fragment}" if partial else "")
    response = render(request, template, context, status=400 if _failed(forms) else 200)
    patch_vary_headers(response, ["HX-Request"])
    return response


def _provider_changed(
    request: HttpRequest,
    provider: Provider,
    message: str,
    fragment: str = "models",
    *,
    dialog: str | None = None,
    level: int = messages.SUCCESS,
) -> HttpResponse:
    """After a change on the provider's page: htmx gets `fragment` and a toast (and `dialog`
    closes), plain posts the page again (redirect) with the message."""
    if not is_partial(request):
        return _go(request, message, reverse("provider-detail", args=[provider.pk]), level=level)
    response = _toast(_provider_page(request, provider, fragment), message)
    if dialog:
        trigger_client_event(response, "aigw:close-dialog", {"id": dialog}, after="settle")
    return response


@login_required
@require_POST
def provider_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """Save a provider's name, base URL and (if typed) credential; blank keeps the credential,
    unless the base URL changed: then the old credential is removed and must be typed again."""
    provider = _managed_provider(request, pk)
    form = ProviderForm(request.POST)
    form.fields["kind"].required = False
    if form.is_valid():
        data = form.cleaned_data
        credential = "" if data["clear_credential"] else (data["credential"] or None)
        had_credential = bool(provider.credential_encrypted)
        try:
            provider_update(
                provider=provider,
                name=data["name"],
                base_url=data["base_url"],
                credential=credential,
                actor=request.user,
            )
        except ApplicationError as error:
            add_service_errors(form, error, default="name")
        else:
            if had_credential and not provider.credential_encrypted and credential is None:
                message = f"Provider {provider.name} saved. Its base URL changed, so type its credential again."
                level = messages.WARNING
            else:
                message, level = f"Provider {provider.name} saved.", messages.SUCCESS
            return _provider_changed(request, provider, message, "saved", dialog="edit-provider-dialog", level=level)
    return _provider_page(request, provider, "edit-form", edit_form=form)


@login_required
@require_POST
def provider_remove(request: HttpRequest, pk: int) -> HttpResponse:
    """Delete a provider no model routes to (platform admins)."""
    provider = _managed_provider(request, pk)
    try:
        provider_delete(provider=provider, actor=request.user)
    except ApplicationError as error:
        return _provider_page(request, provider, "summary", delete_error=" ".join(error.messages))
    return _go(request, f"Provider {provider.name} deleted.", reverse("provider-list"))


@login_required
@require_POST
def provider_test(request: HttpRequest, pk: int) -> HttpResponse:
    """Test the provider's connection (platform admins: the call carries its credential); htmx
    gets the result line, others the page and a message."""
    provider = _managed_provider(request, pk)
    result = provider_test_connection(provider)
    if getattr(request, "htmx", False):
        return render(request, "providers/_connection_result.html", {"result": result, "provider": provider})
    (messages.success if result.ok else messages.error)(request, f"{provider.name}: {result.message}")
    return redirect(_safe_next(request) or reverse("provider-detail", args=[provider.pk]))


def _managed_model(request: HttpRequest, provider: Provider, model_pk: int) -> Model:
    catalog = Model.objects.restrict(request.user, Action.MANAGE_PROVIDERS)
    return get_object_or_404(catalog, pk=model_pk, provider=provider)


def _safe_next(request: HttpRequest) -> str | None:
    """The `next` form field when it is a path on this site (never another host)."""
    target = request.POST.get("next") or ""
    return target if url_has_allowed_host_and_scheme(target, allowed_hosts=None) and target.startswith("/") else None


def _prices_from(data: dict) -> dict[str, Decimal | None]:
    return {field: data.get(field) for field in ModelForm.PRICE_FIELDS}


@login_required
@require_POST
def model_add(request: HttpRequest, pk: int) -> HttpResponse:
    """Add a model to the provider; all prices blank takes genai-prices' defaults. htmx gets the
    models table and a fresh form, and the dialog closes."""
    provider = _managed_provider(request, pk)
    form = ModelForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        prices = _prices_from(data)
        given = any(value is not None for value in prices.values())
        try:
            model = model_create(
                name=data["name"],
                provider=provider,
                upstream_model=data["upstream_model"] or None,
                prices=Prices(*prices.values()) if given else None,
                actor=request.user,
            )
        except ApplicationError as error:
            add_service_errors(form, error, default="name")
        else:
            source = "your prices" if given else model.get_price_source_display()
            message = f"Model {model.name} added ({source})."
            return _provider_changed(request, provider, message, "model-added", dialog="add-model-dialog")
    return _provider_page(request, provider, "add-model-form", model_form=form)


@login_required
@require_POST
def model_edit(request: HttpRequest, pk: int, model_pk: int) -> HttpResponse:
    """Change a model's upstream name and prices (USD per million tokens); errors show in the
    model's row."""
    provider = _managed_provider(request, pk)
    model = _managed_model(request, provider, model_pk)
    form = ModelForm(request.POST)
    form.fields["name"].required = False
    if form.is_valid():
        data = form.cleaned_data
        try:
            model_update(
                model=model,
                upstream_model=data["upstream_model"] or model.name,
                actor=request.user,
                **_prices_from(data),
            )
        except ApplicationError as error:
            add_service_errors(form, error, default="name")
        else:
            return _provider_changed(request, provider, f"Model {model.name} saved.")
    return _provider_page(request, provider, model_edit_form=form, edited_model=model.pk)


@login_required
@require_POST
def model_remove(request: HttpRequest, pk: int, model_pk: int) -> HttpResponse:
    """Delete a model (usage events keep its name); one that live gateways list is refused,
    naming them, so that no gateway's list changes (or empties) behind its admins' back."""
    provider = _managed_provider(request, pk)
    model = _managed_model(request, provider, model_pk)
    try:
        model_delete(model=model, actor=request.user)
    except ApplicationError as error:
        return _provider_page(request, provider, model_error=" ".join(error.messages))
    return _provider_changed(request, provider, f"Model {model.name} deleted.")


@login_required
def model_default_prices(request: HttpRequest, pk: int) -> HttpResponse:
    """The pricing library's default prices for `?upstream_model=` (or `?name=`) on this
    provider's kind, as the hint under the Add model form's prices."""
    provider = _provider(request, pk)
    name = (request.GET.get("upstream_model") or request.GET.get("name") or "").strip()
    prices = default_prices(name, provider.kind) if name else None
    return render(request, "providers/_default_prices.html", {"name": name, "prices": prices})
