"""Console forms of API keys (Create, Edit, Edit budget, and the expiry every API key dialog asks
for) and of personal API tokens. They validate input only; the writes happen in services, whose
errors reach the forms through `core.errors.add_service_errors`."""

from __future__ import annotations

from datetime import UTC

from django import forms
from django.utils import timezone

from gateway.forms import GatewayCreateForm
from keys.expiry import EXPIRES_IN_CHOICES, expires_at_for
from keys.models import ApiKey
from quotas.forms import CREATE_BUDGET_MESSAGE, BudgetFieldsForm, choice_field, usd_field
from quotas.models import LimitMode, RefreshPeriod, SpendBudget

CUSTOM_EXPIRY_REQUIRED = "Pick the date and time (UTC) when the API key expires."
CUSTOM_EXPIRY_PAST = "The expiry must be in the future."
KEEP_EXPIRY = "keep"

# Zenlayer's choices: 7/30/60/90 days, Long-lived, Custom date-time (UTC).
EXPIRY_CHOICES = [*((k, label) for k, (label, _) in EXPIRES_IN_CHOICES.items()), ("custom", "Custom")]


def _expires_at_field() -> forms.DateTimeField:
    """The Custom date-time field of the Create AI Gateway dialog (same formats, same widget)."""
    field = GatewayCreateForm.base_fields["expires_at"]
    assert isinstance(field, forms.DateTimeField)
    return forms.DateTimeField(
        required=False,
        label=field.label,
        input_formats=field.input_formats,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )


class ExpiryForm(forms.Form):
    """An API key expiration as the Create AI Gateway dialog asks for it: a choice of
    EXPIRY_CHOICES, and a date-time in UTC for `custom`.

    `cleaned_data["expires_at"]` is an aware UTC datetime, or None for unlimited validity
    (Long-lived); with the `keep` choice (Edit dialog only) `cleaned_data["keep_expiry"]` is True.
    """

    expires_in = forms.ChoiceField(label="API key expiration", choices=EXPIRY_CHOICES, initial="never")
    expires_at = _expires_at_field()

    def clean(self):
        data = super().clean()
        choice = data.get("expires_in") or ""
        data["keep_expiry"] = choice == KEEP_EXPIRY
        if choice == "custom":
            moment = data.get("expires_at")
            if moment is None:
                if "expires_at" not in self.errors:
                    self.add_error("expires_at", CUSTOM_EXPIRY_REQUIRED)
            else:
                moment = moment.replace(tzinfo=UTC) if timezone.is_naive(moment) else moment.astimezone(UTC)
                if moment <= timezone.now():
                    self.add_error("expires_at", CUSTOM_EXPIRY_PAST)
                data["expires_at"] = moment
        elif choice in EXPIRES_IN_CHOICES:
            data["expires_at"] = expires_at_for(choice)
        else:
            data["expires_at"] = None
        return data

    @staticmethod
    def initial_for(api_key: ApiKey | None) -> dict:
        """`Custom` at the key's expiry (UTC) when it has one, else `Long-lived`."""
        if api_key is None or api_key.expires_at is None:
            return {"expires_in": "never"}
        return {"expires_in": "custom", "expires_at": api_key.expires_at.astimezone(UTC).replace(tzinfo=None)}


class GatewayChoiceField(forms.ModelChoiceField):
    """Picks a gateway, shown as `support-bot · Platform` (its resource group)."""

    def label_from_instance(self, obj) -> str:
        return f"{obj.name} · {obj.resource_group}"


class ApiKeyCreateForm(ExpiryForm):
    """Create API key: name, expiration, and (for owners and admins) an optional spend budget in
    USD with its refresh period and mode (blank: no budget)."""

    name = forms.CharField(
        max_length=100,
        label="Name",
        error_messages={"required": "Enter a name for the API key."},
        widget=forms.TextInput(attrs={"placeholder": "e.g. production", "autocomplete": "off"}),
    )
    limit_usd = usd_field(CREATE_BUDGET_MESSAGE, label="Spend budget (USD)")
    refresh_period = choice_field(RefreshPeriod.choices, "Refresh period")
    mode = choice_field(LimitMode.choices, "Mode")

    field_order = ["name", "expires_in", "expires_at", "limit_usd", "refresh_period", "mode"]

    def __init__(self, *args, with_budget: bool = True, gateways=None, **kwargs) -> None:
        """`gateways`: a queryset to pick the key's gateway from (the API keys page), else None."""
        super().__init__(*args, **kwargs)
        self.with_budget = with_budget
        if gateways is not None:
            self.fields["gateway"] = GatewayChoiceField(
                queryset=gateways,
                label="AI gateway",
                empty_label=None,
                error_messages={"invalid_choice": "Pick one of the gateways where you may create API keys."},
            )
            self.order_fields(["gateway", *self.field_order])
        if not with_budget:
            for name in ("limit_usd", "refresh_period", "mode"):
                del self.fields[name]

    def clean(self):
        data = super().clean()
        data["limit_usd"] = data.get("limit_usd") if self.with_budget else None
        data["refresh_period"] = data.get("refresh_period") or RefreshPeriod.NONE
        data["mode"] = data.get("mode") or LimitMode.SOFT
        return data


class ApiKeyEditForm(ExpiryForm):
    """Edit an API key: its name and expiry (`keep` leaves the expiry as it is)."""

    name = forms.CharField(
        max_length=100,
        label="Name",
        error_messages={"required": "Enter a name for the API key."},
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    expires_in = forms.ChoiceField(
        label="Expiration",
        choices=[(KEEP_EXPIRY, "Keep the current expiry"), *EXPIRY_CHOICES],
        initial=KEEP_EXPIRY,
    )

    field_order = ["name", "expires_in", "expires_at"]


class ApiKeyBudgetForm(BudgetFieldsForm):
    """The Edit budget dialog of an API key: enable (create or restore) or disable (archive)."""

    enabled = forms.BooleanField(required=False, label="Enable budget")

    def limited(self, data: dict) -> bool:
        return bool(data.get("enabled"))

    @classmethod
    def initial_for(cls, budget: SpendBudget | None) -> dict:
        """The dialog's initial data for the key's own budget (enabled when it is enforced)."""
        return {"enabled": budget is not None and budget.enforced, **cls._budget_initial(budget)}


class ApiTokenForm(forms.Form):
    """Create a personal API token: a name, and an optional expiry (UTC; blank never expires)."""

    name = forms.CharField(max_length=100, help_text="What the token is for, e.g. “CI pipeline”.")
    expires_at = forms.DateTimeField(
        required=False,
        label="Expires (UTC)",
        help_text="Leave blank for a token that does not expire.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )

    def clean_expires_at(self):
        """An expiry must lie in the future."""
        value = self.cleaned_data.get("expires_at")
        if value is not None and value <= timezone.now():
            raise forms.ValidationError("Choose a time in the future.")
        return value
