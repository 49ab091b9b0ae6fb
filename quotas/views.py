"""Console views of a gateway's limits: the Limits tab of the gateway details page (token quota,
spend budget, TPM and RPM, each with what was used in its window) and the Manage token quota
dialog of its header. SPEC §2.

The details page itself is `gateway.views.gateway_detail`; it asks `limits_context` for the
Limits tab. Reads go through the permission policy, writes through `quotas.services`.
"""

from __future__ import annotations

from decimal import Decimal

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.forms import Form
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import trigger_client_event

from core.htmx import close_dialog, is_partial, render_dialog, save_form
from core.permissions import User
from core.templatetags.aigw import usd
from gateway.models import Gateway
from gateway.selectors import gateway_to_manage
from quotas.forms import RateLimitForm, SpendBudgetForm, TokenQuotaForm
from quotas.models import Level, LimitMode, RateLimit, RefreshPeriod, SpendBudget, TokenQuota
from quotas.periods import window_start
from quotas.selectors import Used, used_in_window
from quotas.services import rate_limit_set, spend_budget_set, token_quota_set

# Limits tab: the gateway's token quota, spend budget, TPM and RPM.

LIMIT_FORMS: dict[str, type[Form]] = {
    "token-quota": TokenQuotaForm,
    "spend-budget": SpendBudgetForm,
    "rate-limit": RateLimitForm,
}
LIMIT_SAVED = {
    "token-quota": "Token quota saved.",
    "spend-budget": "Spend budget saved.",
    "rate-limit": "TPM and RPM saved.",
}


@login_required
@require_POST
def gateway_limit_edit(request: HttpRequest, pk: int, kind: str) -> HttpResponse:
    """Save one limit of the Limits tab (`kind`: `token-quota`, `spend-budget` or `rate-limit`);
    htmx gets the limit's card back, with its errors or saved, other clients the page."""
    # gateway.views imports this module for the Limits tab, so its page is imported here, when
    # a request comes, not when the module loads (a cycle).
    from gateway.views import render_detail

    gateway = gateway_to_manage(request.user, pk)
    form = LIMIT_FORMS[kind](request.POST)
    if kind == "token-quota":
        saved = save_form(form, lambda data: token_quota_save(gateway, data))
    elif kind == "spend-budget":
        saved = save_form(form, lambda data: spend_budget_save(data, gateway=gateway))
    else:
        saved = save_form(form, lambda data: _rate_limit_save(gateway, data))
    if not is_partial(request):
        if saved:
            messages.success(request, LIMIT_SAVED[kind])
            return redirect(reverse("gateway-detail", args=[gateway.pk]) + "?tab=limits")
        return render_detail(request, gateway, "limits", bound={kind: form})
    context = {
        "gateway": gateway,
        "can_manage": True,
        **limits_context(request.user, gateway, bound={} if saved else {kind: form}, saved=kind if saved else None),
    }
    response = render(request, f"gateway/gateway_detail.html#limit-{kind}", context)
    if saved:
        trigger_client_event(response, "aigw:toast", {"message": LIMIT_SAVED[kind]})
    return response


def limits_context(
    user: User, gateway: Gateway, *, bound: dict[str, Form] | None = None, saved: str | None = None
) -> dict:
    """What the Limits tab shows: each limit (read through the policy), its form, and what was
    used in its window (a limit's state, `quotas.selectors`).

    `bound`: forms that failed to save, by kind (`token-quota`, `spend-budget`, `rate-limit`),
    shown instead of fresh ones; `saved`: the kind just saved. The keys: `saved`, `quota`,
    `quota_used`, `quota_percent`, `budget` (None when archived), `budget_spent`, `budget_line`,
    `budget_percent`, `rate`, `minute_tokens`, `minute_requests`, `token_quota_form`,
    `spend_budget_form`, `rate_limit_form`."""
    bound = bound or {}
    now = timezone.now()
    quota = TokenQuota.objects.restrict(user).filter(gateway=gateway).first()
    budget = SpendBudget.objects.restrict(user).filter(gateway=gateway).first()
    rate = RateLimit.objects.restrict(user).filter(gateway=gateway).first()
    windows: dict[str, Used] = {}

    def used(period: str) -> Used:
        if period not in windows:
            windows[period] = used_in_window(level=Level.GATEWAY, entity_id=gateway.pk, since=window_start(period, now))
        return windows[period]

    live_budget = budget if budget is not None and budget.archived_at is None else None
    quota_used = used(quota.refresh_period if quota else RefreshPeriod.NONE).tokens
    spent = used(live_budget.refresh_period if live_budget else RefreshPeriod.NONE).usd
    minute = now.replace(second=0, microsecond=0)
    this_minute = used_in_window(level=Level.GATEWAY, entity_id=gateway.pk, since=minute)
    return {
        "saved": saved,
        "quota": quota,
        "quota_used": quota_used,
        "quota_percent": percent_of(quota_used, quota.limit_tokens) if quota else None,
        "budget": live_budget,
        "budget_spent": spent,
        "budget_line": budget_line(spent, live_budget) if live_budget else None,
        "budget_percent": percent_of(spent, live_budget.limit_usd) if live_budget else None,
        "rate": rate,
        "minute_tokens": this_minute.tokens,
        "minute_requests": this_minute.requests,
        "token_quota_form": bound.get("token-quota") or TokenQuotaForm(initial=TokenQuotaForm.initial_for(quota)),
        "spend_budget_form": bound.get("spend-budget") or SpendBudgetForm(initial=SpendBudgetForm.initial_for(budget)),
        "rate_limit_form": bound.get("rate-limit") or RateLimitForm(initial=RateLimitForm.initial_for(rate)),
    }


# Gateway details: the Manage token quota dialog of the header.


@login_required
@require_http_methods(["GET", "POST"])
def gateway_token_quota(request: HttpRequest, pk: int) -> HttpResponse:
    """Manage token quota: Unlimited, or tokens (every type) per refresh period, soft or hard.
    The same save as the Limits tab (`quotas.services.token_quota_set`)."""
    gateway = gateway_to_manage(request.user, pk)
    quota = TokenQuota.objects.restrict(request.user).filter(gateway=gateway).first()
    if request.method == "POST":
        form = TokenQuotaForm(request.POST)
        if save_form(form, lambda data: token_quota_save(gateway, data)):
            detail = reverse("gateway-detail", args=[gateway.pk])
            return close_dialog(request, "Token quota saved.", "token-quota-dialog", detail)
    else:
        form = TokenQuotaForm(initial=TokenQuotaForm.initial_for(quota))
    context = {"gateway": gateway, "form": form, "quota": quota}
    return render_dialog(request, "gateway/dialogs/token_quota.html", context)


# Writes: each calls the limit's service; what the service refuses goes back to the form.


def token_quota_save(gateway: Gateway, data: dict) -> None:
    """Save the Manage token quota form's `cleaned_data` on `gateway` (unlimited removes it).

    Raises:
        ValidationFailed: from `quotas.services.token_quota_set`.
    """
    token_quota_set(
        gateway=gateway,
        limit_tokens=None if data["unlimited"] else data["limit_tokens"],
        refresh_period=data["refresh_period"],
        mode=data["mode"],
    )


def _rate_limit_save(gateway: Gateway, data: dict) -> None:
    rate_limit_set(
        gateway=gateway,
        tokens_per_minute=data["tokens_per_minute"],
        requests_per_minute=data["requests_per_minute"],
    )


def spend_budget_save(data: dict, **owner) -> None:
    """Save a `quotas.forms.BudgetFieldsForm`'s `cleaned_data` as the spend budget of `owner`
    (`gateway=` or `api_key=`): not `limited` archives it, `active` False keeps it unenforced.

    Raises:
        ValidationFailed: from `quotas.services.spend_budget_set`.
    """
    spend_budget_set(
        limit_usd=data["limit_usd"] if data["limited"] else None,
        refresh_period=data.get("refresh_period") or RefreshPeriod.NONE,
        mode=data.get("mode") or LimitMode.SOFT,
        active=data.get("active", True),
        **owner,
    )


# How a limit reads on the console.


def budget_line(spent: Decimal, budget: SpendBudget) -> str:
    """Vercel's budget text: `$1.04 / $10 spent · monthly` (no period for `none`)."""
    line = f"{usd(spent)} / {_dollars(budget.limit_usd)} spent"
    if budget.refresh_period != RefreshPeriod.NONE:
        line += f" · {budget.refresh_period}"
    return line


def percent_of(used, limit) -> int:
    """How much of `limit` is `used`, as a whole percentage capped at 100 (100 for no limit)."""
    return min(100, int(100 * used / limit)) if limit else 100


def _dollars(amount: Decimal) -> str:
    """A limit in USD: `$10` for whole dollars, else as exact as `usd` (`$12.50`)."""
    if amount == amount.to_integral_value():
        return f"${int(amount)}"
    return usd(amount)
