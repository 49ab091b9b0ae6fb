"""Writes for resource groups, gateways, providers and models."""

from __future__ import annotations

from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.audit import audit_record, audit_snapshot
from core.errors import Conflict, NotFound, ValidationFailed, from_django
from core.freshness import bump_group
from core.permissions import Action, forget_roles, require
from gateway.mock_catalog import MOCK_MODELS, MOCK_PROVIDER_NAME
from gateway.models import (
    Gateway,
    GatewayStatus,
    Membership,
    Model,
    Provider,
    ProviderKind,
    ResourceGroup,
    Role,
)
from gateway.pricing import Prices, default_prices

GATEWAY_AUDIT_FIELDS = ["name", "status", "resource_group", "all_models", "deleted_at"]
PROVIDER_AUDIT_FIELDS = ["name", "kind", "base_url", "settings"]  # never the credential
MODEL_AUDIT_FIELDS = [
    "name",
    "provider",
    "upstream_model",
    "input_price_per_mtok",
    "cached_input_price_per_mtok",
    "cache_write_price_per_mtok",
    "output_price_per_mtok",
    "price_source",
    "max_output_tokens",
    "enabled",
]


def _ensure_group_name_free(*, name: str, exclude_pk: int | None = None) -> None:
    """Resource group names are unique.

    Raises:
        ValidationFailed: `{"name": ...}` when another group has the name.
    """
    name = name.strip()
    if not name:
        raise ValidationFailed({"name": "A resource group needs a name."})
    taken = ResourceGroup.objects.filter(name=name)
    if exclude_pk is not None:
        taken = taken.exclude(pk=exclude_pk)
    if taken.exists():
        raise ValidationFailed({"name": f"A resource group named '{name}' already exists."})


@transaction.atomic
def resource_group_create(*, name: str, owner=None) -> ResourceGroup:
    """Create a resource group; `owner` (a user), if given, becomes its owner. Any signed-in
    user may create one (SPEC §1).

    Raises:
        ValidationFailed: `{"name": ...}` for a blank name or one another group has.
    """
    _ensure_group_name_free(name=name)
    group = ResourceGroup.objects.create(name=name.strip())
    audit_record(action="resource_group.create", target=group, resource_group=group, after={"name": name})
    if owner is not None:
        membership_set(resource_group=group, user=owner, role=Role.OWNER)
    return group


def _ensure_name_free(*, resource_group: ResourceGroup, name: str, exclude_pk: int | None = None) -> None:
    """A live gateway's name is unique in its resource group.

    Raises:
        ValidationFailed: `{"name": ...}` when another live gateway there has it.
    """
    if not name or not name.strip():
        raise ValidationFailed({"name": "A gateway needs a name."})
    taken = Gateway.objects.filter(resource_group=resource_group, name=name, deleted_at__isnull=True)
    if exclude_pk is not None:
        taken = taken.exclude(pk=exclude_pk)
    if taken.exists():
        raise ValidationFailed({"name": f"A gateway named '{name}' already exists in {resource_group}."})


def gateway_name_check(*, resource_group: ResourceGroup, name: str) -> None:
    """Check that `name` is free for a new gateway in `resource_group` (for forms that validate
    a step before the create).

    Raises:
        ValidationFailed: `{"name": ...}` when another live gateway there has it.
    """
    _ensure_name_free(resource_group=resource_group, name=name)


SETTABLE_GATEWAY_STATUSES = (GatewayStatus.ENABLED, GatewayStatus.DISABLED)


def _models_for(*, all_models: bool, models_: list[Model] | None) -> list[Model]:
    """The list a gateway keeps: none when it serves all models.

    Raises:
        ValidationFailed: `{"models": ...}` for a disabled or unknown model.
    """
    if all_models:
        return []
    chosen = list(models_ or [])
    ids = [m.pk for m in chosen]
    if len(set(ids)) != Model.objects.filter(pk__in=ids).count():
        raise ValidationFailed({"models": "Every model must be in the catalog."})
    return chosen


@transaction.atomic
def gateway_update(
    *,
    gateway: Gateway,
    name: str | None = None,
    status: str | None = None,
    all_models: bool | None = None,
    models: list[Model] | None = None,
) -> Gateway:
    """Rename a gateway, enable or disable it, and/or set its models (seen by the data plane on
    its next reload). `all_models` True serves every enabled model; False serves exactly
    `models` (an empty list serves none, never all). Passing `models` alone keeps the flag as it
    is unless it was `all_models`, which then ends (the list is explicit).

    Raises:
        ValidationFailed: for a name another live gateway of the group has (`name`), a status
            other than `enabled`/`disabled` (`status`), a model outside the catalog (`models`).
    """
    fields = []
    before = audit_snapshot(gateway, GATEWAY_AUDIT_FIELDS) or {}
    before_models = _model_names(list(gateway.allowed_models.all()))
    if name is not None and name != gateway.name:
        _ensure_name_free(resource_group=gateway.resource_group, name=name, exclude_pk=gateway.pk)
        gateway.name = name
        fields.append("name")
    if status is not None and status != gateway.status:
        if status not in SETTABLE_GATEWAY_STATUSES:
            raise ValidationFailed({"status": 'A gateway\'s status can be set to "enabled" or "disabled".'})
        gateway.status = status
        fields.append("status")
    models_changed = False
    if all_models is not None or models is not None:
        wanted_all = bool(all_models) if all_models is not None else False
        chosen = _models_for(all_models=wanted_all, models_=models)
        if wanted_all != gateway.all_models:
            gateway.all_models = wanted_all
            fields.append("all_models")
        if _model_names(chosen) != before_models:
            gateway.allowed_models.set(chosen)
            models_changed = True
    if fields or models_changed:
        if fields:
            gateway.save(update_fields=fields)
        audit_record(
            action="gateway.update",
            target=gateway,
            resource_group=gateway.resource_group_id,
            before={**before, "allowed_models": before_models},
            after={
                **(audit_snapshot(gateway, GATEWAY_AUDIT_FIELDS) or {}),
                "allowed_models": _model_names(list(gateway.allowed_models.all())),
            },
        )
    return gateway


def gateway_delete(*, gateway: Gateway) -> Gateway:
    """Delete a gateway softly: the row stays for usage and audit records, its keys stop working
    (the data plane refuses a deleted gateway). One conditional UPDATE; deleting twice is a no-op."""
    deleted = Gateway.objects.filter(pk=gateway.pk, deleted_at__isnull=True).update(deleted_at=timezone.now())
    gateway.refresh_from_db(fields=["deleted_at"])
    if deleted:
        bump_group(gateway.resource_group_id)
        audit_record(
            action="gateway.delete",
            target=gateway,
            resource_group=gateway.resource_group_id,
            before={"name": gateway.name, "status": gateway.status},
        )
    return gateway


@transaction.atomic
def gateway_insert(
    *,
    resource_group: ResourceGroup,
    name: str,
    created_by=None,
    allowed_models: list[Model] | None = None,
    all_models: bool | None = None,
) -> Gateway:
    """Create an enabled gateway with its models, audited as `gateway.create`; no key, no limits
    (`gateway.setup.gateway_create` adds those: Zenlayer's Create AI Gateway).

    The gateway's models: `all_models` True serves every enabled model; False exactly
    `allowed_models`. With `all_models` None it is True when no list is given.

    Raises:
        ValidationFailed: for a name another live gateway of the group has, or a model not in
            the catalog (nothing is created).
    """
    _ensure_name_free(resource_group=resource_group, name=name)
    if all_models is None:
        all_models = allowed_models is None
    chosen = _models_for(all_models=all_models, models_=allowed_models)
    gateway = Gateway.objects.create(
        resource_group=resource_group,
        name=name,
        status=GatewayStatus.ENABLED,
        created_by=created_by,
        all_models=all_models,
    )
    audit_record(
        action="gateway.create",
        target=gateway,
        resource_group=resource_group,
        after={**(audit_snapshot(gateway, GATEWAY_AUDIT_FIELDS) or {}), "allowed_models": _model_names(chosen)},
    )
    if chosen:
        gateway.allowed_models.set(chosen)
    return gateway


def _model_names(models_: list[Model] | None) -> list[str]:
    return sorted(m.name for m in models_ or [])


def copy_name(gateway: Gateway) -> str:
    """`<name> (copy)`, else `<name> (copy 2)`, `(copy 3)`… the first one free in the group."""
    taken = set(
        Gateway.objects.filter(resource_group_id=gateway.resource_group_id, deleted_at__isnull=True).values_list(
            "name", flat=True
        )
    )
    number = 1
    while True:
        suffix = " (copy)" if number == 1 else f" (copy {number})"
        candidate = gateway.name[: 100 - len(suffix)] + suffix
        if candidate not in taken:
            return candidate
        number += 1


@transaction.atomic
def resource_group_update(*, resource_group: ResourceGroup, name: str) -> ResourceGroup:
    """Rename a resource group.

    Raises:
        ValidationFailed: `{"name": ...}` when another group has that name.
    """
    if name == resource_group.name:
        return resource_group
    _ensure_group_name_free(name=name, exclude_pk=resource_group.pk)
    before = {"name": resource_group.name}
    resource_group.name = name
    resource_group.save(update_fields=["name"])
    audit_record(
        action="resource_group.update",
        target=resource_group,
        resource_group=resource_group,
        before=before,
        after={"name": name},
    )
    return resource_group


@transaction.atomic
def resource_group_delete(*, resource_group: ResourceGroup) -> None:
    """Delete an empty resource group (no gateways, live or deleted: their usage stays readable).

    Raises:
        Conflict: while the group holds gateways (their usage must stay readable).
    """
    if Gateway.objects.filter(resource_group=resource_group).exists():
        raise Conflict("The resource group holds gateways; their usage stays readable, so the group stays.")
    audit_record(
        action="resource_group.delete",
        target=resource_group,
        resource_group=None,
        before={"name": resource_group.name},
    )
    resource_group.delete()


class LastOwner(Conflict):
    """409: a change would leave a resource group without an owner."""


def _member_audit(action: str, membership: Membership, before: dict | None, after: dict | None) -> None:
    audit_record(
        action=action,
        target=membership.user,
        target_type="member",
        target_name=membership.user.get_username(),
        resource_group=membership.resource_group_id,
        before=before,
        after=after,
    )


def _lock_members_of(resource_group: ResourceGroup) -> None:
    """Serialize membership changes of one group: lock its row (SELECT … FOR UPDATE) before any
    membership row. Two owners demoting each other then queue up instead of each locking their
    own row and deadlocking on the other's (PostgreSQL would abort one of them)."""
    ResourceGroup.objects.select_for_update().filter(pk=resource_group.pk).values_list("pk", flat=True).first()


def _ensure_other_owner(*, resource_group: ResourceGroup, user) -> None:
    """Raise LastOwner unless the group has an owner other than `user`; locks the owner rows so
    two concurrent demotions cannot both pass (SELECT … FOR UPDATE)."""
    owners = list(
        Membership.objects.select_for_update()
        .filter(resource_group=resource_group, role=Role.OWNER)
        .values_list("user_id", flat=True)
    )
    if not [uid for uid in owners if uid != user.pk]:
        raise LastOwner("A resource group keeps at least one owner; make someone else owner first.")


@transaction.atomic
def membership_set(*, resource_group: ResourceGroup, user, role: str) -> Membership:
    """Give `user` the `role` in `resource_group` (adding or changing a member).

    Raises:
        LastOwner: for demoting the group's only owner (409).
        ValidationFailed: `{"role": ...}` for an unknown role.
    """
    if role not in Role.values:
        raise ValidationFailed({"role": f"Unknown role '{role}'; one of {', '.join(Role.values)}."})
    _lock_members_of(resource_group)
    forget_roles(user)
    membership = Membership.objects.select_for_update().filter(resource_group=resource_group, user=user).first()
    if membership is None:
        membership = Membership.objects.create(resource_group=resource_group, user=user, role=role)
        _member_audit("member.add", membership, None, {"role": role})
        return membership
    if membership.role == role:
        return membership
    if membership.role == Role.OWNER:
        _ensure_other_owner(resource_group=resource_group, user=user)
    before = {"role": membership.role}
    membership.role = role
    membership.save(update_fields=["role"])
    _member_audit("member.update", membership, before, {"role": role})
    return membership


def user_by_name_or_email(identifier: str):
    """The active user whose username (exact) or e-mail address (any case) is `identifier`.

    Raises:
        ValidationFailed: `{"user": ...}` when nobody has it.
    """
    identifier = (identifier or "").strip()
    user = (
        get_user_model()
        .objects.filter(Q(username=identifier) | Q(email__iexact=identifier), is_active=True)
        .order_by("pk")
        .first()
        if identifier
        else None
    )
    if user is None:
        raise ValidationFailed({"user": "No user has this username or email; they must have an account first."})
    return user


@transaction.atomic
def membership_add(*, resource_group: ResourceGroup, user, role: str) -> Membership:
    """Add `user` (a user, or a username or e-mail address) to `resource_group` with `role`.

    Raises:
        ValidationFailed: `{"user": ...}` for an unknown user or one who is a member already
            (change a role with `membership_set`), `{"role": ...}` for an unknown role.
    """
    if isinstance(user, str):
        user = user_by_name_or_email(user)
    _lock_members_of(resource_group)
    if Membership.objects.filter(resource_group=resource_group, user=user).exists():
        raise ValidationFailed({"user": f"{user.get_username()} is a member already; change their role instead."})
    return membership_set(resource_group=resource_group, user=user, role=role)


@transaction.atomic
def membership_remove(*, resource_group: ResourceGroup, user) -> bool:
    """Remove `user` from `resource_group`; False when it was not a member.

    Raises:
        LastOwner: for removing the group's only owner.
    """
    _lock_members_of(resource_group)
    forget_roles(user)
    membership = Membership.objects.select_for_update().filter(resource_group=resource_group, user=user).first()
    if membership is None:
        return False
    if membership.role == Role.OWNER:
        _ensure_other_owner(resource_group=resource_group, user=user)
    membership.delete()
    _member_audit("member.remove", membership, {"role": membership.role}, None)
    return True


@transaction.atomic
def platform_admin_set(*, username: str, is_platform_admin: bool):
    """Give an existing, active user the platform admin right (Django's `is_staff`), or take it
    back (a superuser stays one: that flag is Django's own). Audited as `platform_admin.grant`
    or `platform_admin.revoke`. Returns the user.

    Raises:
        NotFound: when no active user has that username.
    """
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise NotFound(f"No active user is named '{username}'.")
    if user.is_staff != is_platform_admin:
        user.is_staff = is_platform_admin
        user.save(update_fields=["is_staff"])
        audit_record(
            action="platform_admin.grant" if is_platform_admin else "platform_admin.revoke",
            target=user,
            target_type="user",
            target_name=user.get_username(),
            before={"is_staff": not is_platform_admin},
            after={"is_staff": is_platform_admin},
        )
    forget_roles(user)
    return user


def _require_platform_admin(actor) -> None:
    """Providers, credentials, models and prices serve the whole instance: only platform admins
    change them (SPEC §1). `actor` None is aigw itself (migrations, management commands, jobs).

    Raises:
        PermissionDenied: for any other user (403).
    """
    if actor is not None:
        require(actor, Action.MANAGE_PROVIDERS)


def _ensure_provider_name_free(name: str, exclude_pk: int | None = None) -> None:
    taken = Provider.objects.filter(name=name)
    if exclude_pk is not None:
        taken = taken.exclude(pk=exclude_pk)
    if taken.exists():
        raise ValidationFailed({"name": f"A provider named '{name}' already exists."})


def _save_provider(provider: Provider) -> None:
    try:
        provider.full_clean()
    except DjangoValidationError as error:
        raise from_django(error) from error
    provider.save()


@transaction.atomic
def provider_create(
    *, name: str, kind: str, base_url: str = "", credential: str = "", settings: dict | None = None, actor=None
) -> Provider:
    """Create a provider; `credential` is encrypted before it is stored.

    Raises:
        PermissionDenied: when `actor` is not a platform admin.
        ValidationFailed: for a taken name (`name`), an unknown kind (`kind`), a bad base URL.
    """
    _require_platform_admin(actor)
    _ensure_provider_name_free(name)
    provider = Provider(name=name, kind=kind, base_url=base_url.rstrip("/"), settings=settings or {})
    provider.set_credential(credential)
    _save_provider(provider)
    audit_record(
        action="provider.create",
        target=provider,
        after={**(audit_snapshot(provider, PROVIDER_AUDIT_FIELDS) or {}), "credential_set": bool(credential)},
    )
    return provider


@transaction.atomic
def provider_update(
    *,
    provider: Provider,
    name: str | None = None,
    kind: str | None = None,
    base_url: str | None = None,
    credential: str | None = None,
    settings: dict | None = None,
    actor=None,
) -> Provider:
    """Change a provider; `credential` None keeps the stored one, "" clears it. A changed base
    URL clears the stored credential unless a new one comes in the same call (SPEC §1), so a
    credential is never sent to an address it was not typed for. The audit event records that
    the credential changed, never its value.

    Raises:
        PermissionDenied: when `actor` is not a platform admin.
        ValidationFailed: for a taken name, a changed kind (`kind`: add a new provider), or a
            bad base URL (nothing is saved).
    """
    _require_platform_admin(actor)
    before = audit_snapshot(provider, PROVIDER_AUDIT_FIELDS) or {}
    had_credential = bool(provider.credential_encrypted)
    if kind is not None and kind != provider.kind:
        raise ValidationFailed({"kind": "The kind of a provider cannot change; add a new provider."})
    if name is not None and name != provider.name:
        _ensure_provider_name_free(name, exclude_pk=provider.pk)
        provider.name = name
    if base_url is not None and base_url.rstrip("/") != provider.base_url:
        provider.base_url = base_url.rstrip("/")
        if credential is None:
            credential = ""  # the old credential must be typed again for the new address
    if settings is not None:
        provider.settings = settings
    if credential is not None:
        provider.set_credential(credential)
    _save_provider(provider)
    after = audit_snapshot(provider, PROVIDER_AUDIT_FIELDS) or {}
    if credential is not None and (credential or had_credential):
        before = {**before, "credential": "(set)" if had_credential else "(none)"}
        after = {**after, "credential": "(changed)" if credential else "(cleared)"}
    audit_record(action="provider.update", target=provider, before=before, after=after)
    return provider


@transaction.atomic
def provider_delete(*, provider: Provider, actor=None) -> None:
    """Delete a provider that no model routes to.

    Raises:
        PermissionDenied: when `actor` is not a platform admin.
        Conflict: while models route to it (409 naming them).
    """
    _require_platform_admin(actor)
    names = list(provider.models.order_by("name").values_list("name", flat=True)[:10])
    if names:
        raise Conflict(
            f"Models route to this provider ({', '.join(names)}); delete them or route them elsewhere first."
        )
    audit_record(action="provider.delete", target=provider, before=audit_snapshot(provider, PROVIDER_AUDIT_FIELDS))
    provider.delete()


def _ensure_model_name_free(name: str, exclude_pk: int | None = None) -> None:
    if not name or not name.strip():
        raise ValidationFailed({"name": "A model needs a name."})
    taken = Model.objects.filter(name=name)
    if exclude_pk is not None:
        taken = taken.exclude(pk=exclude_pk)
    if taken.exists():
        raise ValidationFailed({"name": f"A model named '{name}' already exists."})


@transaction.atomic
def model_create(
    *,
    name: str,
    provider: Provider,
    upstream_model: str | None = None,
    prices: Prices | None = None,
    max_output_tokens: int | None = None,
    enabled: bool = True,
    actor=None,
) -> Model:
    """Create a model routed to `provider`.

    With `prices` None the defaults come from genai-prices for `upstream_model` (price source
    `genai-prices`), or the model stays unpriced (`none`); given prices are `custom`.

    Raises:
        PermissionDenied: when `actor` is not a platform admin.
        ValidationFailed: for a name another model has (`name`) or a negative price.
    """
    _require_platform_admin(actor)
    _ensure_model_name_free(name)
    upstream_model = upstream_model or name
    source = Model.PriceSource.CUSTOM
    if prices is None:
        prices = default_prices(upstream_model, provider.kind)
        source = Model.PriceSource.GENAI_PRICES if prices else Model.PriceSource.NONE
    prices = prices or Prices()
    for field, value in zip(
        MODEL_PRICE_FIELDS, (prices.input, prices.cached_input, prices.cache_write, prices.output), strict=True
    ):
        if value is not None and value < 0:
            raise ValidationFailed({field: "A price cannot be negative."})
    model = Model.objects.create(
        name=name,
        provider=provider,
        upstream_model=upstream_model,
        input_price_per_mtok=prices.input,
        cached_input_price_per_mtok=prices.cached_input,
        cache_write_price_per_mtok=prices.cache_write,
        output_price_per_mtok=prices.output,
        price_source=source,
        max_output_tokens=max_output_tokens,
        enabled=enabled,
    )
    audit_record(action="model.create", target=model, after=audit_snapshot(model, MODEL_AUDIT_FIELDS))
    return model


MODEL_PRICE_FIELDS = (
    "input_price_per_mtok",
    "cached_input_price_per_mtok",
    "cache_write_price_per_mtok",
    "output_price_per_mtok",
)


@transaction.atomic
def model_update(*, model: Model, actor=None, **changes) -> Model:
    """Change a model: `name`, `provider`, `upstream_model`, `max_output_tokens`, `enabled` and
    the four prices (USD per million tokens, Decimal or None). Changing a price makes the price
    source `custom`; prices apply to requests from then on (usage events keep the cost they had).

    Raises:
        PermissionDenied: when `actor` is not a platform admin.
        ValidationFailed: for an unknown field name, a taken name or a negative price.
    """
    _require_platform_admin(actor)
    allowed = {"name", "provider", "upstream_model", "max_output_tokens", "enabled", *MODEL_PRICE_FIELDS}
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationFailed({field: "Not a field of a model." for field in sorted(unknown)})
    if "name" in changes and changes["name"] != model.name:
        _ensure_model_name_free(changes["name"], exclude_pk=model.pk)
    before = audit_snapshot(model, MODEL_AUDIT_FIELDS)
    for field, value in changes.items():
        if field in MODEL_PRICE_FIELDS:
            value = None if value is None else Decimal(value)
            if value is not None and value < 0:
                raise ValidationFailed({field: "A price cannot be negative."})
            if value != getattr(model, field):
                model.price_source = Model.PriceSource.CUSTOM
        setattr(model, field, value)
    try:
        model.full_clean()
    except DjangoValidationError as error:
        raise from_django(error) from error
    model.save()
    audit_record(action="model.update", target=model, before=before, after=audit_snapshot(model, MODEL_AUDIT_FIELDS))
    return model


def gateways_listing(model: Model) -> list[Gateway]:
    """The live gateways whose explicit model list holds `model` (not those serving all models)."""
    return list(model.gateways.filter(deleted_at__isnull=True, all_models=False).order_by("name", "pk"))


@transaction.atomic
def model_delete(*, model: Model, actor=None) -> None:
    """Delete a model that no live gateway lists; usage events keep its name.

    A gateway's list is explicit (SPEC §1): taking a model out of it is a change to that gateway,
    made by its admins, so the catalog cannot remove it underneath them, and the list can never
    become empty (which once meant "every model") behind their back.

    Raises:
        PermissionDenied: when `actor` is not a platform admin.
        Conflict: while live gateways list it (409 naming them; disable the model instead).
    """
    _require_platform_admin(actor)
    listing = gateways_listing(model)
    if listing:
        names = ", ".join(f"'{g.name}'" for g in listing[:10])
        raise Conflict(
            f"Gateways list this model: {names}. Remove it from their models first, or disable the model instead."
        )
    audit_record(action="model.delete", target=model, before=audit_snapshot(model, MODEL_AUDIT_FIELDS))
    model.delete()


@transaction.atomic
def mock_provider_ensure() -> Provider:
    """The built-in mock provider with its models `mock/echo` and `mock/large` (idempotent).

    The same rows that migration gateway 0002 creates; tests whose database was flushed use it.
    """
    provider, _ = Provider.objects.get_or_create(name=MOCK_PROVIDER_NAME, defaults={"kind": ProviderKind.MOCK})
    for model_name, (price_row, max_output) in MOCK_MODELS.items():
        if Model.objects.filter(name=model_name).exists():
            continue
        p_in, p_cached, p_write, p_out = (None if v is None else Decimal(v) for v in price_row)
        model_create(
            name=model_name,
            provider=provider,
            prices=Prices(input=p_in, cached_input=p_cached, cache_write=p_write, output=p_out),
            max_output_tokens=max_output,
        )
    return provider
