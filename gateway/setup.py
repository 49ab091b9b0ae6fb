"""Setting up a gateway: Zenlayer's Create AI Gateway and Duplicate AI Gateway, which make a
gateway, its first API key and its limits in one transaction.

These use cases span three apps (gateway, keys, quotas), so they live above their domains: the
console, the API, the CLI's management commands and the demo call them; no domain module
(models, services, selectors of any app) imports this one (the import-linter contracts in
pyproject.toml, docs/architecture.md).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db import transaction

from core.audit import audit_record
from gateway.models import Gateway, Model, ResourceGroup
from gateway.services import copy_name, gateway_insert
from keys.models import ApiKey
from keys.services import api_key_create
from quotas.models import RateLimit, RefreshPeriod, SpendBudget, TokenQuota
from quotas.services import rate_limit_set, spend_budget_create, token_quota_set


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
    all_models: bool | None = None,
    spend_budget_usd: Decimal | None = None,
    spend_budget_refresh_period: str = RefreshPeriod.NONE,
    tokens_per_minute: int | None = None,
) -> tuple[Gateway, ApiKey, str]:
    """Create an enabled gateway with its first API key (Zenlayer's Create AI Gateway).

    `token_quota` (tokens, every type), `spend_budget_usd` (USD, at least 1) and
    `tokens_per_minute` are attached to the gateway, so they hold for all its keys; None means
    unlimited. `expires_at` (aware UTC) applies to the first key; None means no expiry.
    The gateway's models: `all_models` True serves every enabled model; False exactly
    `allowed_models`. With `all_models` None it is True when no list is given (the console's
    and the API's create, which pick no models) and False otherwise.
    Returns `(gateway, api_key, secret)`; the secret is not stored anywhere.

    Raises:
        ValidationFailed: for a name another live gateway of the group has, a budget below
            1 USD or a bad TPM (nothing is created).
    """
    gateway = gateway_insert(
        resource_group=resource_group,
        name=name,
        created_by=created_by,
        allowed_models=allowed_models,
        all_models=all_models,
    )
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
def gateway_duplicate(*, gateway: Gateway, name: str | None = None, created_by=None) -> tuple[Gateway, ApiKey, str]:
    """Copy a gateway into its resource group (Zenlayer's Duplicate AI Gateway): the allowed
    models and the gateway-level limits (token quota, live spend budget, TPM/RPM) with no usage,
    and one new API key. Key-level limits, keys and usage are not copied.

    `name` defaults to `<name> (copy)` (then `(copy 2)`…). Returns `(gateway, api_key, secret)`.

    Raises:
        ValidationFailed: `{"name": ...}` for a name another live gateway of the group has.
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
        all_models=gateway.all_models,
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
