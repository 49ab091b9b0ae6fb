"""Writes for resource groups, gateways, providers and models."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

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
from keys.models import ApiKey
from keys.services import api_key_create
from quotas.models import RateLimit, RefreshPeriod, SpendBudget, TokenQuota
from quotas.services import rate_limit_set, spend_budget_create, token_quota_set
from usage.audit import audit_record, audit_snapshot

GATEWAY_AUDIT_FIELDS = ["name", "status", "resource_group", "deleted_at"]
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


@transaction.atomic
def resource_group_create(*, name: str, owner=None) -> ResourceGroup:
    """Create a resource group; `owner` (a user), if given, becomes its owner."""
    group = ResourceGroup.objects.create(name=name)
    audit_record(action="resource_group.create", target=group, resource_group=group, after={"name": name})
    if owner is not None:
        membership_set(resource_group=group, user=owner, role=Role.OWNER)
    return group


def _ensure_name_free(*, resource_group: ResourceGroup, name: str, exclude_pk: int | None = None) -> None:
    """A live gateway's name is unique in its resource group.

    Raises:
        ValidationError: `{"name": ...}` when another live gateway there has it.
    """
    taken = Gateway.objects.filter(resource_group=resource_group, name=name, deleted_at__isnull=True)
    if exclude_pk is not None:
        taken = taken.exclude(pk=exclude_pk)
    if taken.exists():
        raise ValidationError({"name": f"A gateway named '{name}' already exists in {resource_group}."})


@transaction.atomic
def gateway_update(*, gateway: Gateway, name: str | None = None, status: str | None = None) -> Gateway:
    """Rename a gateway and/or enable or disable it (effective within the config TTL).

    Raises:
        ValidationError: for a name another live gateway of the group has.
    """
    fields = []
    before = audit_snapshot(gateway, GATEWAY_AUDIT_FIELDS)
    if name is not None and name != gateway.name:
        _ensure_name_free(resource_group=gateway.resource_group, name=name, exclude_pk=gateway.pk)
        gateway.name = name
        fields.append("name")
    if status is not None and status != gateway.status:
        gateway.status = status
        fields.append("status")
    if fields:
        gateway.save(update_fields=fields)
        audit_record(
            action="gateway.update",
            target=gateway,
            resource_group=gateway.resource_group_id,
            before=before,
            after=audit_snapshot(gateway, GATEWAY_AUDIT_FIELDS),
        )
    return gateway


def gateway_delete(*, gateway: Gateway) -> Gateway:
    """Delete a gateway softly: the row stays for usage and audit records, its keys stop working
    (the data plane refuses a deleted gateway). One conditional UPDATE; deleting twice is a no-op."""
    deleted = Gateway.objects.filter(pk=gateway.pk, deleted_at__isnull=True).update(deleted_at=timezone.now())
    gateway.refresh_from_db(fields=["deleted_at"])
    if deleted:
        audit_record(
            action="gateway.delete",
            target=gateway,
            resource_group=gateway.resource_group_id,
            before={"name": gateway.name, "status": gateway.status},
        )
    return gateway


@transaction.atomic
def gateway_create(
    *,
    resource_group: ResourceGroup,
    name: str,
    created_by=None,
    token_quota: int | None = None,
    token_quota_refresh_period: str = RefreshPeriod.NONE,
    expires_at: datetime | None = None,
    key_name: str | None = None,
    allowed_models: list[Model] | None = None,
    spend_budget_usd: Decimal | None = None,
    spend_budget_refresh_period: str = RefreshPeriod.NONE,
    tokens_per_minute: int | None = None,
) -> tuple[Gateway, ApiKey, str]:
    """Create an enabled gateway with its first API key (Zenlayer's Create AI Gateway).

    `token_quota` (tokens, every type), `spend_budget_usd` (USD, at least 1) and
    `tokens_per_minute` are attached to the gateway, so they hold for all its keys; None means
    unlimited. `expires_at` (aware UTC) applies to the first key; None means no expiry.
    Returns `(gateway, api_key, secret)`; the secret is not stored anywhere.

    Raises:
        django.core.exceptions.ValidationError: for a name another live gateway of the group
            has, a budget below 1 USD or a bad TPM (nothing is created).
    """
    _ensure_name_free(resource_group=resource_group, name=name)
    gateway = Gateway.objects.create(
        resource_group=resource_group, name=name, status=GatewayStatus.ENABLED, created_by=created_by
    )
    audit_record(
        action="gateway.create",
        target=gateway,
        resource_group=resource_group,
        after={**(audit_snapshot(gateway, GATEWAY_AUDIT_FIELDS) or {}), "allowed_models": _model_names(allowed_models)},
    )
    if allowed_models:
        gateway.allowed_models.set(allowed_models)
    if token_quota is not None:
        token_quota_set(gateway=gateway, limit_tokens=token_quota, refresh_period=token_quota_refresh_period)
    if spend_budget_usd is not None:
        spend_budget_create(gateway=gateway, limit_usd=spend_budget_usd, refresh_period=spend_budget_refresh_period)
    if tokens_per_minute is not None:
        rate_limit_set(gateway=gateway, tokens_per_minute=tokens_per_minute, requests_per_minute=None)
    api_key, secret = api_key_create(
        gateway=gateway, name=key_name or f"{name} key", expires_at=expires_at, created_by=created_by
    )
    return gateway, api_key, secret


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
def gateway_duplicate(*, gateway: Gateway, name: str | None = None, created_by=None) -> tuple[Gateway, ApiKey, str]:
    """Copy a gateway into its resource group (Zenlayer's Duplicate AI Gateway): the allowed
    models and the gateway-level limits (token quota, live spend budget, TPM/RPM) with no usage,
    and one new API key. Key-level limits, keys and usage are not copied.

    `name` defaults to `<name> (copy)` (then `(copy 2)`…). Returns `(gateway, api_key, secret)`.

    Raises:
        ValidationError: `{"name": ...}` for a name another live gateway of the group has.
    """
    name = name or copy_name(gateway)
    quota = TokenQuota.objects.filter(gateway=gateway).first()
    budget = SpendBudget.objects.filter(gateway=gateway, archived_at__isnull=True).first()
    rate = RateLimit.objects.filter(gateway=gateway).first()
    copy, api_key, secret = gateway_create(
        resource_group=gateway.resource_group,
        name=name,
        created_by=created_by,
        allowed_models=list(gateway.allowed_models.all()),
    )
    if quota is not None:
        token_quota_set(
            gateway=copy, limit_tokens=quota.limit_tokens, refresh_period=quota.refresh_period, mode=quota.mode
        )
    if budget is not None:
        spend_budget_create(
            gateway=copy,
            limit_usd=budget.limit_usd,
            refresh_period=budget.refresh_period,
            mode=budget.mode,
            active=budget.active,
        )
    if rate is not None:
        rate_limit_set(
            gateway=copy, tokens_per_minute=rate.tokens_per_minute, requests_per_minute=rate.requests_per_minute
        )
    audit_record(
        action="gateway.duplicate",
        target=copy,
        resource_group=copy.resource_group_id,
        after={"source_gateway": gateway.pk, "name": copy.name},
    )
    return copy, api_key, secret


@transaction.atomic
def resource_group_update(*, resource_group: ResourceGroup, name: str) -> ResourceGroup:
    """Rename a resource group.

    Raises:
        ValidationError: `{"name": ...}` when another group has that name.
    """
    if name == resource_group.name:
        return resource_group
    if ResourceGroup.objects.filter(name=name).exclude(pk=resource_group.pk).exists():
        raise ValidationError({"name": f"A resource group named '{name}' already exists."})
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
        ValidationError: `{"resource_group": ...}` while the group holds gateways.
    """
    if Gateway.objects.filter(resource_group=resource_group).exists():
        raise ValidationError({"resource_group": "Delete or move its gateways first; a group with gateways stays."})
    audit_record(
        action="resource_group.delete",
        target=resource_group,
        resource_group=None,
        before={"name": resource_group.name},
    )
    resource_group.delete()


class LastOwner(ValidationError):
    """A change would leave a resource group without an owner."""


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
        raise LastOwner({"role": "A resource group keeps at least one owner; make someone else owner first."})


@transaction.atomic
def membership_set(*, resource_group: ResourceGroup, user, role: str) -> Membership:
    """Give `user` the `role` in `resource_group` (adding or changing a member).

    Raises:
        LastOwner: for demoting the group's only owner.
        ValidationError: `{"role": ...}` for an unknown role.
    """
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role '{role}'; one of {', '.join(Role.values)}."})
    _lock_members_of(resource_group)
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


@transaction.atomic
def membership_remove(*, resource_group: ResourceGroup, user) -> bool:
    """Remove `user` from `resource_group`; False when it was not a member.

    Raises:
        LastOwner: for removing the group's only owner.
    """
    _lock_members_of(resource_group)
    membership = Membership.objects.select_for_update().filter(resource_group=resource_group, user=user).first()
    if membership is None:
        return False
    if membership.role == Role.OWNER:
        _ensure_other_owner(resource_group=resource_group, user=user)
    membership.delete()
    _member_audit("member.remove", membership, {"role": membership.role}, None)
    return True


@transaction.atomic
def provider_create(
    *, name: str, kind: str, base_url: str = "", credential: str = "", settings: dict | None = None
) -> Provider:
    """Create a provider; `credential` is encrypted before it is stored."""
    provider = Provider(name=name, kind=kind, base_url=base_url.rstrip("/"), settings=settings or {})
    provider.set_credential(credential)
    provider.full_clean()
    provider.save()
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
    base_url: str | None = None,
    credential: str | None = None,
    settings: dict | None = None,
) -> Provider:
    """Change a provider; `credential` None keeps the stored one, "" clears it. The audit event
    records that the credential changed, never its value.

    Raises:
        ValidationError: for a taken name or a bad base URL (nothing is saved).
    """
    before = audit_snapshot(provider, PROVIDER_AUDIT_FIELDS) or {}
    if name is not None:
        provider.name = name
    if base_url is not None:
        provider.base_url = base_url.rstrip("/")
    if settings is not None:
        provider.settings = settings
    if credential is not None:
        provider.set_credential(credential)
    provider.full_clean()
    provider.save()
    after = audit_snapshot(provider, PROVIDER_AUDIT_FIELDS) or {}
    if credential is not None:
        before, after = {**before, "credential": "(previous)"}, {**after, "credential": "(changed)"}
    audit_record(action="provider.update", target=provider, before=before, after=after)
    return provider


@transaction.atomic
def provider_delete(*, provider: Provider) -> None:
    """Delete a provider that no model routes to.

    Raises:
        ValidationError: `{"provider": ...}` while models use it.
    """
    if provider.models.exists():
        raise ValidationError({"provider": "Models route to this provider; delete or move them first."})
    audit_record(action="provider.delete", target=provider, before=audit_snapshot(provider, PROVIDER_AUDIT_FIELDS))
    provider.delete()


def model_create(
    *,
    name: str,
    provider: Provider,
    upstream_model: str | None = None,
    prices: Prices | None = None,
    max_output_tokens: int | None = None,
) -> Model:
    """Create a model routed to `provider`.

    With `prices` None the defaults come from genai-prices for `upstream_model` (price source
    `genai-prices`), or the model stays unpriced (`none`); given prices are `custom`.
    """
    upstream_model = upstream_model or name
    source = Model.PriceSource.CUSTOM
    if prices is None:
        prices = default_prices(upstream_model, provider.kind)
        source = Model.PriceSource.GENAI_PRICES if prices else Model.PriceSource.NONE
    prices = prices or Prices()
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
def model_update(*, model: Model, **changes) -> Model:
    """Change a model: `provider`, `upstream_model`, `max_output_tokens`, `enabled` and the four
    prices (USD per million tokens, Decimal or None). Changing a price makes the price source
    `custom`; prices apply to requests from then on (usage events keep the cost they had).

    Raises:
        ValidationError: for an unknown field name or a negative price.
    """
    allowed = {"name", "provider", "upstream_model", "max_output_tokens", "enabled", *MODEL_PRICE_FIELDS}
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationError({field: "Not a field of a model." for field in unknown})
    before = audit_snapshot(model, MODEL_AUDIT_FIELDS)
    for field, value in changes.items():
        if field in MODEL_PRICE_FIELDS:
            value = None if value is None else Decimal(value)
            if value is not None and value < 0:
                raise ValidationError({field: "A price cannot be negative."})
            if value != getattr(model, field):
                model.price_source = Model.PriceSource.CUSTOM
        setattr(model, field, value)
    model.full_clean()
    model.save()
    audit_record(action="model.update", target=model, before=before, after=audit_snapshot(model, MODEL_AUDIT_FIELDS))
    return model


@transaction.atomic
def model_delete(*, model: Model) -> None:
    """Delete a model: it leaves every gateway's allowed models; usage events keep its name."""
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
