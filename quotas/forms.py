"""Console forms of limits: the Limits tab (token quota, spend budget, TPM and RPM), the Manage
token quota dialog, and the fields and messages the other apps' forms ask limits with (Create AI
Gateway, Create API key, Edit budget). They validate input only; the writes happen in
`quotas.services`, whose errors reach the forms through `core.errors.add_service_errors`."""

from __future__ import annotations

from decimal import Decimal

from django import forms

from quotas.models import LimitMode, RateLimit, RefreshPeriod, SpendBudget, TokenQuota

QUOTA_REQUIRED = "Enter a positive number of tokens, or tick Unlimited quota."
BUDGET_MESSAGE = "Enter a spend budget of at least 1 USD."
CREATE_BUDGET_MESSAGE = "Enter a spend budget of at least 1 USD, or leave it blank for none."
TPM_REQUIRED = "Enter a positive whole number of tokens per minute, or tick Unlimited TPM."
RPM_REQUIRED = "Enter a positive whole number of requests per minute, or tick Unlimited RPM."


def usd_field(message: str, **kwargs) -> forms.DecimalField:
    """A USD amount of at least 1 with at most 4 decimal places (what a spend budget stores)."""
    return forms.DecimalField(
        required=False,
        min_value=Decimal(1),
        max_digits=14,
        decimal_places=4,
        error_messages={
            "min_value": message,
            "invalid": message,
            "max_decimal_places": "Use at most 4 decimal places.",
            "max_digits": "That is more than aigw can store; enter a smaller amount.",
        },
        **kwargs,
    )


def per_minute_field(message: str, **kwargs) -> forms.IntegerField:
    """An optional TPM or RPM: a whole number from 1 to 2,147,483,647 (what a rate limit stores);
    `message` for any value outside."""
    return forms.IntegerField(
        required=False,
        min_value=1,
        max_value=2_147_483_647,
        error_messages={"min_value": message, "invalid": message, "max_value": message},
        **kwargs,
    )


def choice_field(choices, label: str) -> forms.ChoiceField:
    """Optional in the form (a disabled fieldset sends nothing); the model's default otherwise."""
    return forms.ChoiceField(required=False, choices=choices, label=label)


class TokenQuotaForm(forms.Form):
    """A token quota on the Limits tab: Unlimited, or tokens per refresh period, soft or hard."""

    unlimited = forms.BooleanField(required=False, label="Unlimited quota")
    limit_tokens = forms.IntegerField(
        required=False,
        min_value=1,
        label="Token quota (tokens, all types)",
        error_messages={"min_value": QUOTA_REQUIRED, "invalid": QUOTA_REQUIRED},
    )
    refresh_period = choice_field(RefreshPeriod.choices, "Refresh period")
    mode = choice_field(LimitMode.choices, "Mode")

    @staticmethod
    def initial_for(quota: TokenQuota | None) -> dict:
        """The form's initial data for the gateway's quota (None: Unlimited)."""
        if quota is None:
            return {"unlimited": True, "refresh_period": RefreshPeriod.NONE, "mode": LimitMode.SOFT}
        return {
            "unlimited": False,
            "limit_tokens": quota.limit_tokens,
            "refresh_period": quota.refresh_period,
            "mode": quota.mode,
        }

    def clean(self):
        data = super().clean()
        if not data.get("unlimited") and data.get("limit_tokens") is None and "limit_tokens" not in self.errors:
            self.add_error("limit_tokens", QUOTA_REQUIRED)
        data["refresh_period"] = data.get("refresh_period") or RefreshPeriod.NONE
        data["mode"] = data.get("mode") or LimitMode.SOFT
        return data


class BudgetFieldsForm(forms.Form):
    """The fields of a spend budget: a USD limit (at least 1), a refresh period and a mode.
    Subclasses say whether a budget is wanted at all (`limited`): the gateway's (`SpendBudgetForm`)
    and an API key's (`keys.forms.ApiKeyBudgetForm`, Edit budget).

    `cleaned_data` holds `limited`, `limit_usd`, `refresh_period` and `mode` (defaults filled in);
    `quotas.views.spend_budget_save` writes it."""

    limit_usd = usd_field(BUDGET_MESSAGE, label="Limit (USD)")
    refresh_period = choice_field(RefreshPeriod.choices, "Refresh period")
    mode = choice_field(LimitMode.choices, "Mode")

    def limited(self, data: dict) -> bool:
        """Whether `data` (the cleaned data so far) asks for a budget."""
        raise NotImplementedError

    def clean(self):
        data = super().clean()
        if self.limited(data) and data.get("limit_usd") is None and "limit_usd" not in self.errors:
            self.add_error("limit_usd", BUDGET_MESSAGE)
        data["limited"] = self.limited(data)
        data["refresh_period"] = data.get("refresh_period") or RefreshPeriod.NONE
        data["mode"] = data.get("mode") or LimitMode.SOFT
        return data

    @staticmethod
    def _budget_initial(budget: SpendBudget | None) -> dict:
        if budget is None:
            return {"refresh_period": RefreshPeriod.NONE, "mode": LimitMode.SOFT, "active": True}
        return {
            "limit_usd": f"{budget.limit_usd.normalize():f}",
            "refresh_period": budget.refresh_period,
            "mode": budget.mode,
            "active": budget.active,
        }


class SpendBudgetForm(BudgetFieldsForm):
    """A gateway's spend budget on the Limits tab: Unlimited (none, or archived), or a budget
    that is enforced (`active`) or kept without being enforced."""

    unlimited = forms.BooleanField(required=False, label="Unlimited spend (no budget)")
    active = forms.BooleanField(required=False, label="Active (enforced)")

    def limited(self, data: dict) -> bool:
        return not data.get("unlimited")

    @classmethod
    def initial_for(cls, budget: SpendBudget | None) -> dict:
        """The form's initial data for the gateway's budget (None or archived: Unlimited)."""
        return {"unlimited": budget is None or budget.archived_at is not None, **cls._budget_initial(budget)}


class RateLimitForm(forms.Form):
    """A gateway's TPM and RPM, each Unlimited or a positive whole number."""

    unlimited_tpm = forms.BooleanField(required=False, label="Unlimited TPM")
    tokens_per_minute = per_minute_field(TPM_REQUIRED, label="Tokens per minute (TPM)")
    unlimited_rpm = forms.BooleanField(required=False, label="Unlimited RPM")
    requests_per_minute = per_minute_field(RPM_REQUIRED, label="Requests per minute (RPM)")

    @staticmethod
    def initial_for(limit: RateLimit | None) -> dict:
        """The form's initial data for the gateway's rate limit (None: both Unlimited)."""
        tpm = limit.tokens_per_minute if limit else None
        rpm = limit.requests_per_minute if limit else None
        return {
            "unlimited_tpm": tpm is None,
            "tokens_per_minute": tpm,
            "unlimited_rpm": rpm is None,
            "requests_per_minute": rpm,
        }

    def clean(self):
        data = super().clean()
        for field, unlimited, message in (
            ("tokens_per_minute", "unlimited_tpm", TPM_REQUIRED),
            ("requests_per_minute", "unlimited_rpm", RPM_REQUIRED),
        ):
            if data.get(unlimited):
                data[field] = None
            elif data.get(field) is None and field not in self.errors:
                self.add_error(field, message)
        return data
