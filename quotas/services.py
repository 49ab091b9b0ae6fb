"""Writes for limits: token quotas, spend budgets (create, change, archive, restore), TPM/RPM,
and the automatic suspension of keys at their token quota. Console, API, CLI and jobs all
write limits through these functions; the data plane sees a change from the next request."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.db import IntegrityError, transaction
from django.utils import timezone

from core.audit import audit_record, audit_snapshot
from core.errors import Conflict, ValidationFailed
from core.freshness import bump_group
from keys.models import ApiKey, ApiKeyStatus, SuspendedReason
from quotas.models import LimitMode, RateLimit, RefreshPeriod, SpendBudget, TokenQuota

BUDGET_EXISTS = "A spend budget exists for this owner; change it, or restore it if it was removed."
MINIMUM_BUDGET_USD = Decimal(1)
# The counters hold spend in integer units of 1e-10 USD and add them in Redis' Lua, whose
# numbers are doubles: exact up to 2**53 units, $900,719.925… So a budget is at most $900,000,
# and every amount up to it is counted to the last 1e-10 USD (docs/limits.md, "Exactness").
MAXIMUM_BUDGET_USD = Decimal(900_000)
# Token quotas, TPM and RPM: integers, exact in the same doubles far beyond this.
MAXIMUM_TOKENS = 10**15


class BudgetExists(Conflict):
    """409: the owner already has a spend budget, archived or not (Vercel's quotas API answers 409)."""


def _owner_filter(*, api_key=None, gateway=None, resource_group=None) -> dict:
    owners = {"api_key": api_key, "gateway": gateway, "resource_group": resource_group}
    given = {k: v for k, v in owners.items() if v is not None}
    if len(given) != 1:
        raise ValueError("give exactly one of api_key, gateway, resource_group")
    return given


TOKEN_QUOTA_FIELDS = ["limit_tokens", "refresh_period", "mode"]
SPEND_BUDGET_FIELDS = ["limit_usd", "refresh_period", "mode", "active", "archived_at"]
RATE_LIMIT_FIELDS = ["tokens_per_minute", "requests_per_minute"]
_LEVEL_NAMES = {"api_key": "API key", "gateway": "gateway", "resource_group": "resource group"}


def _audit_limit(*, action: str, owner: dict, before: dict | None, after: dict | None) -> None:
    """One audit event for a change to a limit of `owner` (`{"api_key"|"gateway"|"resource_group": obj}`).

    The target is the owner (its id), named `<level> '<name>'`; the event belongs to the owner's
    resource group."""
    ((level, obj),) = owner.items()
    if level == "api_key":
        group_id = obj.gateway.resource_group_id
    elif level == "gateway":
        group_id = obj.resource_group_id
    else:
        group_id = obj.pk
    audit_record(
        action=action,
        target=obj,
        target_name=f"{_LEVEL_NAMES[level]} '{obj.name}'",
        resource_group=group_id,
        before=None if before is None else {"level": level, **before},
        after=None if after is None else {"level": level, **after},
    )


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
    before = audit_snapshot(TokenQuota.objects.filter(**owner).first(), TOKEN_QUOTA_FIELDS)
    if limit_tokens is None:
        TokenQuota.objects.filter(**owner).delete()
        quota = None
    else:
        if not isinstance(limit_tokens, int) or limit_tokens <= 0:
            raise ValidationFailed({"limit_tokens": "A token quota must be a positive number of tokens."})
        if limit_tokens > MAXIMUM_TOKENS:
            raise ValidationFailed({"limit_tokens": f"A token quota is at most {MAXIMUM_TOKENS:,} tokens."})
        _check_choice("refresh_period", refresh_period, RefreshPeriod)
        _check_choice("mode", mode, LimitMode)
        quota, _ = TokenQuota.objects.update_or_create(
            **owner, defaults={"limit_tokens": limit_tokens, "refresh_period": refresh_period, "mode": mode}
        )
    after = audit_snapshot(quota, TOKEN_QUOTA_FIELDS)
    if before != after:
        verb = "create" if before is None else "remove" if after is None else "update"
        _audit_limit(action=f"token_quota.{verb}", owner=owner, before=before, after=after)
    _keys_under(**owner).filter(status=ApiKeyStatus.SUSPENDED, suspended_reason=SuspendedReason.TOKEN_QUOTA).update(
        status=ApiKeyStatus.ACTIVE, suspended_reason=SuspendedReason.NONE
    )
    return quota


def api_keys_suspend_for_token_quota(*, api_key_ids: list[int]) -> int:
    """Mark active keys as suspended with reason `token_quota`; returns how many changed.

    Each change is one conditional UPDATE (safe when several gateway processes see the quota
    reached at once) and one audit event by aigw itself (`api_key.suspend`)."""
    changed = 0
    for api_key in ApiKey.objects.filter(pk__in=api_key_ids, status=ApiKeyStatus.ACTIVE).select_related("gateway"):
        if ApiKey.objects.filter(pk=api_key.pk, status=ApiKeyStatus.ACTIVE).update(
            status=ApiKeyStatus.SUSPENDED, suspended_reason=SuspendedReason.TOKEN_QUOTA
        ):
            changed += 1
            bump_group(api_key.gateway.resource_group_id)
            audit_record(
                action="api_key.suspend",
                target=api_key,
                resource_group=api_key.gateway.resource_group_id,
                before={"status": ApiKeyStatus.ACTIVE.value, "suspended_reason": ""},
                after={"status": ApiKeyStatus.SUSPENDED.value, "suspended_reason": SuspendedReason.TOKEN_QUOTA.value},
            )
    return changed


def api_key_reactivate_after_token_quota(*, api_key_id: int) -> int:
    """Make a key suspended for `token_quota` active again (its quota has room again, e.g. in
    a new refresh period); returns 1 if it changed, else 0 (audited as `api_key.reactivate`)."""
    changed = ApiKey.objects.filter(
        pk=api_key_id, status=ApiKeyStatus.SUSPENDED, suspended_reason=SuspendedReason.TOKEN_QUOTA
    ).update(status=ApiKeyStatus.ACTIVE, suspended_reason=SuspendedReason.NONE)
    if changed:
        api_key = ApiKey.objects.select_related("gateway").get(pk=api_key_id)
        bump_group(api_key.gateway.resource_group_id)
        audit_record(
            action="api_key.reactivate",
            target=api_key,
            resource_group=api_key.gateway.resource_group_id,
            before={"status": ApiKeyStatus.SUSPENDED.value, "suspended_reason": SuspendedReason.TOKEN_QUOTA.value},
            after={"status": ApiKeyStatus.ACTIVE.value, "suspended_reason": ""},
        )
    return changed


def _check_choice(field: str, value: str, choices) -> None:
    if value not in choices.values:
        raise ValidationFailed({field: f"Must be one of {', '.join(choices.values)}, not {value!r}."})


def _usd(value) -> Decimal:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        raise ValidationFailed({"limit_usd": "Must be a number of US dollars."}) from None
    if not amount.is_finite() or amount < MINIMUM_BUDGET_USD:
        raise ValidationFailed({"limit_usd": f"Must be at least {MINIMUM_BUDGET_USD} USD."})
    if amount > MAXIMUM_BUDGET_USD:
        raise ValidationFailed(
            {"limit_usd": f"Must be at most {MAXIMUM_BUDGET_USD:,} USD, the most aigw counts exactly to 1e-10 USD."}
        )
    if amount != amount.quantize(Decimal("0.0001")):
        raise ValidationFailed({"limit_usd": "Use at most 4 decimal places."})
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
        ValidationFailed: for an amount below 1 USD, an unknown refresh period or mode.
    """
    owner = _owner_filter(api_key=api_key, gateway=gateway, resource_group=resource_group)
    amount = _usd(limit_usd)
    _check_choice("refresh_period", refresh_period, RefreshPeriod)
    _check_choice("mode", mode, LimitMode)
    if SpendBudget.objects.filter(**owner).exists():
        raise BudgetExists(BUDGET_EXISTS)
    try:
        with transaction.atomic():  # a savepoint: two creates racing meet the unique constraint
            budget = SpendBudget.objects.create(
                **owner, limit_usd=amount, refresh_period=refresh_period, mode=mode, active=active
            )
    except IntegrityError:
        raise BudgetExists(BUDGET_EXISTS) from None
    _audit_limit(
        action="spend_budget.create", owner=owner, before=None, after=audit_snapshot(budget, SPEND_BUDGET_FIELDS)
    )
    return budget


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
    `archived=True` archives it. Effective on the next request.

    Raises:
        ValidationFailed: for an amount below 1 USD, an unknown refresh period or mode.
    """
    budget = (
        SpendBudget.objects.select_related("api_key__gateway", "gateway", "resource_group")
        .select_for_update(of=("self",))
        .get(pk=budget.pk)
    )
    before = audit_snapshot(budget, SPEND_BUDGET_FIELDS)
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
    after = audit_snapshot(budget, SPEND_BUDGET_FIELDS)
    if before != after:
        verb = "update"
        if archived is not None and (before or {}).get("archived_at") != (after or {}).get("archived_at"):
            verb = "archive" if archived else "restore"
        owner = _owner_filter(api_key=budget.api_key, gateway=budget.gateway, resource_group=budget.resource_group)
        _audit_limit(action=f"spend_budget.{verb}", owner=owner, before=before, after=after)
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
        ValidationFailed: as `spend_budget_create`.
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
        ValidationFailed: for a limit that is not a positive integer.
    """
    owner = _owner_filter(api_key=api_key, gateway=gateway, resource_group=resource_group)
    for field, value in (("tokens_per_minute", tokens_per_minute), ("requests_per_minute", requests_per_minute)):
        if value is not None and (not isinstance(value, int) or value <= 0):
            raise ValidationFailed({field: "Must be a positive whole number."})
        if value is not None and value > MAXIMUM_TOKENS:
            raise ValidationFailed({field: f"Must be at most {MAXIMUM_TOKENS:,} per minute."})
    before = audit_snapshot(RateLimit.objects.filter(**owner).first(), RATE_LIMIT_FIELDS)
    limit: RateLimit | None = None
    if tokens_per_minute is None and requests_per_minute is None:
        RateLimit.objects.filter(**owner).delete()
    else:
        limit, _ = RateLimit.objects.update_or_create(
            **owner, defaults={"tokens_per_minute": tokens_per_minute, "requests_per_minute": requests_per_minute}
        )
    after = audit_snapshot(limit, RATE_LIMIT_FIELDS)
    if before != after:
        verb = "create" if before is None else "remove" if after is None else "update"
        _audit_limit(action=f"rate_limit.{verb}", owner=owner, before=before, after=after)
    return limit
