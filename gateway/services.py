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
from quotas.models import RefreshPeriod
from quotas.services import rate_limit_set, spend_budget_create, token_quota_set


@transaction.atomic
def resource_group_create(*, name: str, owner=None) -> ResourceGroup:
    """Create a resource group; `owner` (a user), if given, becomes its owner."""
    group = ResourceGroup.objects.create(name=name)
    if owner is not None:
        Membership.objects.create(user=owner, resource_group=group, role=Role.OWNER)
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
    if name is not None and name != gateway.name:
        _ensure_name_free(resource_group=gateway.resource_group, name=name, exclude_pk=gateway.pk)
        gateway.name = name
        fields.append("name")
    if status is not None and status != gateway.status:
        gateway.status = status
        fields.append("status")
    if fields:
        gateway.save(update_fields=fields)
    return gateway


def gateway_delete(*, gateway: Gateway) -> Gateway:
    """Delete a gateway softly: the row stays for usage and audit records, its keys stop working
    (the data plane refuses a deleted gateway). One conditional UPDATE; deleting twice is a no-op."""
    Gateway.objects.filter(pk=gateway.pk, deleted_at__isnull=True).update(deleted_at=timezone.now())
    gateway.refresh_from_db(fields=["deleted_at"])
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


@transaction.atomic
def provider_create(
    *, name: str, kind: str, base_url: str = "", credential: str = "", settings: dict | None = None
) -> Provider:
    """Create a provider; `credential` is encrypted before it is stored."""
    provider = Provider(name=name, kind=kind, base_url=base_url.rstrip("/"), settings=settings or {})
    provider.set_credential(credential)
    provider.full_clean()
    provider.save()
    return provider


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
    return Model.objects.create(
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
