"""Writes for limits: token quotas, spend budgets (create, change, archive, restore), TPM/RPM,
and the automatic suspension of keys at their token quota. Console, API, CLI and jobs all
write limits through these functions; the data plane sees a change within its config TTL."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from keys.models import ApiKey, ApiKeyStatus, SuspendedReason
from quotas.models import LimitMode, RateLimit, RefreshPeriod, SpendBudget, TokenQuota

MINIMUM_BUDGET_USD = Decimal(1)
MAXIMUM_BUDGET_USD = Decimal(10**10)  # SpendBudget.limit_usd holds 10 digits before the point


class BudgetExists(Exception):
    """The owner already has a spend budget, archived or not (Vercel's quotas API answers 409)."""


def _owner_filter(*, api_key=None, gateway=None, resource_group=None) -> dict:
    owners = {"api_key": api_key, "gateway": gateway, "resource_group": resource_group}
    given = {k: v for k, v in owners.items() if v is not None}
    if len(given) != 1:
        raise ValueError("give exactly one of api_key, gateway, resource_group")
    return given


def _keys_under(*, api_key=None, gateway=None, resource_group=None):
    if api_key is not None:
        return ApiKey.objects.filter(pk=api_key.pk)
    if gateway is not None:
        return ApiKey.objects.filter(gateway=gateway)
    return ApiKey.objects.filter(gateway__resource_group=resource_group)


@transaction.atomic
def token_quota_set(
    *,
    limit_tokens: int | None,
    refresh_period: str = RefreshPeriod.NONE,
    mode: str = LimitMode.SOFT,
    api_key=None,
    gateway=None,
    resource_group=None,
) -> TokenQuota | None:
    """Set (or, with `limit_tokens=None`, remove) the token quota of one key, gateway or group.

    Keys suspended for `token_quota` under that owner become active again at once: enforcement
    compares used tokens with the quota on every request, so a raised quota lets the next
    request through and a quota still below usage rejects it again (Zenlayer's semantics).

    Raises:
        ValueError: for a non-positive limit or not exactly one owner.
    """
    owner = _owner_filter(api_key=api_key, gateway=gateway, resource_group=resource_group)
    if limit_tokens is None:
        TokenQuota.objects.filter(**owner).delete()
        quota = None
    else:
        if limit_tokens <= 0:
            raise ValueError("a token quota must be a positive number of tokens")
        _check_choice("refresh_period", refresh_period, RefreshPeriod)
        _check_choice("mode", mode, LimitMode)
        quota, _ = TokenQuota.objects.update_or_create(
            **owner, defaults={"limit_tokens": limit_tokens, "refresh_period": refresh_period, "mode": mode}
        )
    _keys_under(**owner).filter(status=ApiKeyStatus.SUSPENDED, suspended_reason=SuspendedReason.TOKEN_QUOTA).update(
        status=ApiKeyStatus.ACTIVE, suspended_reason=SuspendedReason.NONE
    )
    return quota


def api_keys_suspend_for_token_quota(*, api_key_ids: list[int]) -> int:
    """Mark active keys as suspended with reason `token_quota`; returns how many changed."""
    return ApiKey.objects.filter(pk__in=api_key_ids, status=ApiKeyStatus.ACTIVE).update(
        status=ApiKeyStatus.SUSPENDED, suspended_reason=SuspendedReason.TOKEN_QUOTA
    )


def api_key_reactivate_after_token_quota(*, api_key_id: int) -> int:
    """Make a key suspended for `token_quota` active again (its quota has room again, e.g. in
    a new refresh period); returns 1 if it changed, else 0."""
    return ApiKey.objects.filter(
        pk=api_key_id, status=ApiKeyStatus.SUSPENDED, suspended_reason=SuspendedReason.TOKEN_QUOTA
    ).update(status=ApiKeyStatus.ACTIVE, suspended_reason=SuspendedReason.NONE)


def _check_choice(field: str, value: str, choices) -> None:
    if value not in choices.values:
        raise ValidationError({field: f"Must be one of {', '.join(choices.values)}, not {value!r}."})


def _usd(value) -> Decimal:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        raise ValidationError({"limit_usd": "Must be a number of US dollars."}) from None
    if not amount.is_finite() or amount < MINIMUM_BUDGET_USD:
        raise ValidationError({"limit_usd": f"Must be at least {MINIMUM_BUDGET_USD} USD."})
    if amount >= MAXIMUM_BUDGET_USD:
        raise ValidationError({"limit_usd": f"Must be below {MAXIMUM_BUDGET_USD:,} USD."})
    if amount != amount.quantize(Decimal("0.0001")):
        raise ValidationError({"limit_usd": "Use at most 4 decimal places."})
    return amount


@transaction.atomic
def spend_budget_create(
    *,
    limit_usd,
    refresh_period: str = RefreshPeriod.NONE,
    mode: str = LimitMode.SOFT,
    active: bool = True,
    api_key=None,
    gateway=None,
    resource_group=None,
) -> SpendBudget:
    """Give one key, gateway or group a spend budget of `limit_usd` (USD, at least 1).

    Raises:
        BudgetExists: it has one already, archived ones included (Vercel: POST returns 409).
        ValidationError: for an amount below 1 USD, an unknown refresh period or mode.
    """
    owner = _owner_filter(api_key=api_key, gateway=gateway, resource_group=resource_group)
    amount = _usd(limit_usd)
    _check_choice("refresh_period", refresh_period, RefreshPeriod)
    _check_choice("mode", mode, LimitMode)
    if SpendBudget.objects.filter(**owner).exists():
        raise BudgetExists("a spend budget exists for this owner; change or restore it instead")
    try:
        with transaction.atomic():  # a savepoint: two creates racing meet the unique constraint
            return SpendBudget.objects.create(
                **owner, limit_usd=amount, refresh_period=refresh_period, mode=mode, active=active
            )
    except IntegrityError:
        raise BudgetExists("a spend budget exists for this owner; change or restore it instead") from None


@transaction.atomic
def spend_budget_update(
    *,
    budget: SpendBudget,
    limit_usd=None,
    refresh_period: str | None = None,
    mode: str | None = None,
    active: bool | None = None,
    archived: bool | None = None,
) -> SpendBudget:
    """Change any of a budget's fields; `archived=False` restores an archived budget and
    `archived=True` archives it. Effective on the next request (within the config TTL).

    Raises:
        ValidationError: for an amount below 1 USD, an unknown refresh period or mode.
    """
    budget = SpendBudget.objects.select_for_update().get(pk=budget.pk)
    if limit_usd is not None:
        budget.limit_usd = _usd(limit_usd)
    if refresh_period is not None:
        _check_choice("refresh_period", refresh_period, RefreshPeriod)
        budget.refresh_period = refresh_period
    if mode is not None:
        _check_choice("mode", mode, LimitMode)
        budget.mode = mode
    if active is not None:
        budget.active = active
    if archived is not None:
        budget.archived_at = (budget.archived_at or timezone.now()) if archived else None
    budget.save()
    return budget


@transaction.atomic
def spend_budget_set(
    *,
    limit_usd,
    refresh_period: str = RefreshPeriod.NONE,
    mode: str = LimitMode.SOFT,
    active: bool = True,
    api_key=None,
    gateway=None,
    resource_group=None,
) -> SpendBudget | None:
    """The console's one save of a spend budget: with `limit_usd` None an existing budget is
    archived (restorable); otherwise it is created, or changed and restored if archived.

    Raises:
        ValidationError: as `spend_budget_create`.
    """
    owner = _owner_filter(api_key=api_key, gateway=gateway, resource_group=resource_group)
    budget = SpendBudget.objects.filter(**owner).first()
    if limit_usd is None:
        if budget is not None and budget.archived_at is None:
            spend_budget_archive(budget=budget)
        return None
    fields = {"limit_usd": limit_usd, "refresh_period": refresh_period, "mode": mode, "active": active}
    if budget is None:
        return spend_budget_create(**owner, **fields)
    return spend_budget_update(budget=budget, **fields, archived=False)


def spend_budget_archive(*, budget: SpendBudget) -> SpendBudget:
    """Remove a budget the way Vercel does: archive it; the owner is unlimited again."""
    return spend_budget_update(budget=budget, archived=True)


@transaction.atomic
def rate_limit_set(
    *,
    tokens_per_minute: int | None,
    requests_per_minute: int | None,
    api_key=None,
    gateway=None,
    resource_group=None,
) -> RateLimit | None:
    """Set the TPM and RPM of one key, gateway or group; both None removes the rate limit.

    Raises:
        ValidationError: for a limit that is not a positive integer.
    """
    owner = _owner_filter(api_key=api_key, gateway=gateway, resource_group=resource_group)
    for field, value in (("tokens_per_minute", tokens_per_minute), ("requests_per_minute", requests_per_minute)):
        if value is not None and (not isinstance(value, int) or value <= 0):
            raise ValidationError({field: "Must be a positive whole number."})
    if tokens_per_minute is None and requests_per_minute is None:
        RateLimit.objects.filter(**owner).delete()
        return None
    limit, _ = RateLimit.objects.update_or_create(
        **owner, defaults={"tokens_per_minute": tokens_per_minute, "requests_per_minute": requests_per_minute}
    )
    return limit
