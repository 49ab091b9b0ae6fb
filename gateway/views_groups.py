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
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from core.errors import ApplicationError, add_service_errors
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


@login_required
def group_list(request: HttpRequest) -> HttpResponse:
    """The user's resource groups with their role, gateways and members; POST creates one (the
    user becomes its owner)."""
    form = GroupNameForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            group = resource_group_create(name=form.cleaned_data["name"], owner=request.user)
        except ApplicationError as error:
            add_service_errors(form, error, default="name")
        else:
            messages.success(request, f"Resource group {group.name} created; you are its owner.")
            return redirect("group-detail", pk=group.pk)
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
    status = 400 if form.errors else 200
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
def group_detail(request: HttpRequest, pk: int, **forms: Any) -> HttpResponse:
    """A group: its gateways and members; owners also get invite, role, remove, rename, delete."""
    group = _group(request, pk)
    is_owner = can(request.user, Action.MANAGE_MEMBERS, group)
    members = (
        Membership.objects.restrict(request.user, Action.VIEW_SETTINGS)
        .filter(resource_group=group)
        .select_related("user")
        .order_by("user__username")
    )
    context = {
        "group": group,
        "role": policy_for(request.user).role_in(group.pk),
        "is_owner": is_owner,
        "members": members,
        "gateways": group.gateways.filter(deleted_at__isnull=True).order_by("name"),
        "roles": Role.choices,
        "invite_form": forms.get("invite_form") or InviteForm(),
        "rename_form": forms.get("rename_form") or GroupNameForm(initial={"name": group.name}),
        "delete_form": forms.get("delete_form") or GroupDeleteForm(expected=group.name),
        "member_error": forms.get("member_error"),
    }
    status = 400 if any(isinstance(f, Form) and f.errors for f in forms.values()) or forms.get("member_error") else 200
    return render(request, "groups/group_detail.html", context, status=status)


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
            messages.success(request, f"{membership.user.get_username()} added as {membership.role}.")
            return redirect("group-detail", pk=group.pk)
    return group_detail(request, pk, invite_form=form)


@login_required
@require_POST
def member_role(request: HttpRequest, pk: int, user_id: int) -> HttpResponse:
    """Change a member's role (owners); the last owner keeps the owner role."""
    group = _owned_group(request, pk)
    membership = _member(request, group, user_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        return group_detail(request, pk, member_error="Pick one of the roles.")
    try:
        membership_set(resource_group=group, user=membership.user, role=form.cleaned_data["role"])
    except ApplicationError as error:
        return group_detail(request, pk, member_error=" ".join(error.messages))
    messages.success(request, f"{membership.user.get_username()} is now {form.cleaned_data['role']}.")
    return redirect("group-detail", pk=group.pk)


@login_required
@require_POST
def member_remove(request: HttpRequest, pk: int, user_id: int) -> HttpResponse:
    """Remove a member (owners); the last owner cannot be removed."""
    group = _owned_group(request, pk)
    membership = _member(request, group, user_id)
    try:
        membership_remove(resource_group=group, user=membership.user)
    except ApplicationError as error:
        return group_detail(request, pk, member_error=" ".join(error.messages))
    messages.success(request, f"{membership.user.get_username()} removed from {group.name}.")
    if membership.user == request.user:
        return redirect("group-list")
    return redirect("group-detail", pk=group.pk)


@login_required
@require_POST
def group_rename(request: HttpRequest, pk: int) -> HttpResponse:
    """Rename the group (owners)."""
    group = _owned_group(request, pk)
    form = GroupNameForm(request.POST)
    if form.is_valid():
        try:
            resource_group_update(resource_group=group, name=form.cleaned_data["name"])
        except ApplicationError as error:
            add_service_errors(form, error, default="name")
        else:
            messages.success(request, f"Resource group renamed to {group.name}.")
            return redirect("group-detail", pk=group.pk)
    return group_detail(request, pk, rename_form=form)


@login_required
@require_POST
def group_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """Delete the group (owners), typing its name; a group that holds gateways stays."""
    group = _owned_group(request, pk)
    form = GroupDeleteForm(request.POST, expected=group.name)
    if form.is_valid():
        try:
            resource_group_delete(resource_group=group)
        except ApplicationError as error:
            add_service_errors(form, error, default="confirm_name")
        else:
            messages.success(request, f"Resource group {form.cleaned_data['confirm_name']} deleted.")
            return redirect("group-list")
    return group_detail(request, pk, delete_form=form)


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
    its models; POST adds one (platform admins)."""
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
                messages.success(request, f"Provider {provider.name} added. Test its connection, then add models.")
                return redirect("provider-detail", pk=provider.pk)
    providers = (
        Provider.objects.restrict(request.user, Action.VIEW_SETTINGS)
        .annotate(model_count=Count("models"))
        .order_by("name")
    )
    context = {"providers": providers, "form": form, "can_manage": can(request.user, Action.MANAGE_PROVIDERS)}
    return render(request, "providers/provider_list.html", context, status=400 if form.errors else 200)


@login_required
def provider_detail(request: HttpRequest, pk: int, **forms: Any) -> HttpResponse:
    """A provider, its settings form (platform admins) and its models with their prices."""
    provider = _provider(request, pk)
    context = {
        "provider": provider,
        "models": Model.objects.restrict(request.user, Action.VIEW_SETTINGS).filter(provider=provider).order_by("name"),
        "can_manage": can(request.user, Action.MANAGE_PROVIDERS),
        "edit_form": forms.get("edit_form")
        or ProviderForm(initial={"name": provider.name, "kind": provider.kind, "base_url": provider.base_url}),
        "model_form": forms.get("model_form") or ModelForm(),
        "delete_error": forms.get("delete_error"),
        "is_mock": provider.kind == ProviderKind.MOCK,
    }
    failed = any(isinstance(f, Form) and f.errors for f in forms.values()) or forms.get("delete_error")
    return render(request, "providers/provider_detail.html", context, status=400 if failed else 200)


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
                messages.warning(
                    request, f"Provider {provider.name} saved. Its base URL changed, so type its credential again."
                )
            else:
                messages.success(request, f"Provider {provider.name} saved.")
            return redirect("provider-detail", pk=provider.pk)
    return provider_detail(request, pk, edit_form=form)


@login_required
@require_POST
def provider_remove(request: HttpRequest, pk: int) -> HttpResponse:
    """Delete a provider no model routes to (platform admins)."""
    provider = _managed_provider(request, pk)
    try:
        provider_delete(provider=provider, actor=request.user)
    except ApplicationError as error:
        return provider_detail(request, pk, delete_error=" ".join(error.messages))
    messages.success(request, f"Provider {provider.name} deleted.")
    return redirect("provider-list")


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
    """Add a model to the provider; all prices blank takes genai-prices' defaults."""
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
            messages.success(request, f"Model {model.name} added ({source}).")
            return redirect("provider-detail", pk=provider.pk)
    return provider_detail(request, pk, model_form=form)


@login_required
@require_POST
def model_edit(request: HttpRequest, pk: int, model_pk: int) -> HttpResponse:
    """Change a model's upstream name and prices (USD per million tokens)."""
    provider = _managed_provider(request, pk)
    model = get_object_or_404(
        Model.objects.restrict(request.user, Action.MANAGE_PROVIDERS), pk=model_pk, provider=provider
    )
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
            messages.success(request, f"Model {model.name} saved.")
            return redirect("provider-detail", pk=pk)
    return provider_detail(request, pk, model_form=form)


@login_required
@require_POST
def model_remove(request: HttpRequest, pk: int, model_pk: int) -> HttpResponse:
    """Delete a model (usage events keep its name); one that live gateways list is refused,
    naming them, so that no gateway's list changes (or empties) behind its admins' back."""
    provider = _managed_provider(request, pk)
    model = get_object_or_404(
        Model.objects.restrict(request.user, Action.MANAGE_PROVIDERS), pk=model_pk, provider=provider
    )
    try:
        model_delete(model=model, actor=request.user)
    except ApplicationError as error:
        return provider_detail(request, pk, delete_error=" ".join(error.messages))
    messages.success(request, f"Model {model.name} deleted.")
    return redirect("provider-detail", pk=pk)


@login_required
def model_default_prices(request: HttpRequest, pk: int) -> HttpResponse:
    """The pricing library's default prices for `?upstream_model=` (or `?name=`) on this
    provider's kind, as the hint under the Add model form's prices."""
    provider = _provider(request, pk)
    name = (request.GET.get("upstream_model") or request.GET.get("name") or "").strip()
    prices = default_prices(name, provider.kind) if name else None
    return render(request, "providers/_default_prices.html", {"name": name, "prices": prices})
