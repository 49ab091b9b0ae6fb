"""Console forms. They validate input only; the writes happen in services, whose errors reach the
forms through `core.errors.add_service_errors`."""

from __future__ import annotations

from datetime import UTC

from django import forms
from django.utils import timezone

from gateway.models import Model, ResourceGroup
from keys.expiry import EXPIRES_IN_CHOICES, expires_at_for
from quotas.forms import (
    CREATE_BUDGET_MESSAGE,
    QUOTA_REQUIRED,
    choice_field,
    per_minute_field,
    usd_field,
)
from quotas.models import RefreshPeriod

CREATE_TPM_MESSAGE = "Enter a positive whole number of tokens per minute, or leave it blank for none."


class GatewayCreateForm(forms.Form):
    """The Create AI Gateway dialog (Zenlayer's steps): token quota, API key expiration, name,
    resource group, terms."""

    unlimited_quota = forms.BooleanField(required=False, initial=True, label="Unlimited quota")
    token_quota = forms.IntegerField(
        required=False,
        min_value=1,
        label="Token quota (tokens, all types)",
        error_messages={"min_value": QUOTA_REQUIRED},
        widget=forms.NumberInput(attrs={"placeholder": "e.g. 1000000", "min": 1, "step": 1}),
    )
    expires_in = forms.ChoiceField(
        required=False,
        label="API key expiration",
        choices=[
            ("", "No expiration"),
            *((k, label) for k, (label, _) in EXPIRES_IN_CHOICES.items()),
            ("custom", "Custom"),
        ],
    )
    expires_at = forms.DateTimeField(
        required=False,
        label="Expires at (UTC)",
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    name = forms.CharField(
        max_length=100,
        label="AI gateway name",
        widget=forms.TextInput(attrs={"placeholder": "e.g. support-bot", "autocomplete": "off"}),
    )
    resource_group = forms.ModelChoiceField(queryset=ResourceGroup.objects.none(), empty_label=None)
    spend_budget_usd = usd_field(CREATE_BUDGET_MESSAGE, label="Spend budget (USD)")
    spend_budget_refresh_period = choice_field(RefreshPeriod.choices, "Refresh period")
    tokens_per_minute = per_minute_field(CREATE_TPM_MESSAGE, label="Tokens per minute (TPM)")
    accept_terms = forms.BooleanField(
        required=True,
        label="I have read and accept the AI Gateway terms",
        error_messages={"required": "Tick the box to accept the AI Gateway terms."},
    )

    # The step of the dialog each field is on, to reopen the dialog where an error is.
    STEPS = {
        "unlimited_quota": 1,
        "token_quota": 1,
        "expires_in": 2,
        "expires_at": 2,
        "name": 3,
        "resource_group": 4,
        "spend_budget_usd": 4,
        "spend_budget_refresh_period": 4,
        "tokens_per_minute": 4,
        "accept_terms": 5,
    }

    def __init__(self, *args, groups, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["resource_group"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = groups

    def clean(self):
        data = super().clean()
        limited = not data.get("unlimited_quota")
        if limited and not data.get("token_quota") and "token_quota" not in self.errors:
            self.add_error("token_quota", QUOTA_REQUIRED)
        choice = data.get("expires_in") or ""
        if choice == "custom":
            moment = data.get("expires_at")
            if moment is None:
                if "expires_at" not in self.errors:
                    self.add_error("expires_at", "Pick the date and time (UTC) when the API key expires.")
            else:
                moment = moment.replace(tzinfo=UTC) if timezone.is_naive(moment) else moment.astimezone(UTC)
                if moment <= timezone.now():
                    self.add_error("expires_at", "The expiry must be in the future.")
                data["expires_at"] = moment
        else:
            data["expires_at"] = expires_at_for(choice)
        data["spend_budget_refresh_period"] = data.get("spend_budget_refresh_period") or RefreshPeriod.NONE
        return data

    def first_error_step(self) -> int:
        return min((self.STEPS.get(field, 1) for field in self.errors), default=1)


MODELS_HELP = (
    "The models this gateway serves, from the catalog. With All models unticked and no model "
    "chosen, the gateway serves no model at all: removing the last model never opens it to every model."
)


class GatewayModelsForm(forms.Form):
    """A gateway's models on Basic information (owners and admins, SPEC §1): every model of the
    catalog (`all_models`), or exactly the chosen ones (none: the gateway serves no model)."""

    all_models = forms.BooleanField(
        required=False,
        label="All models",
        help_text="Every enabled model of the catalog, including models added later.",
    )
    models = forms.ModelMultipleChoiceField(
        queryset=Model.objects.none(),
        required=False,
        label="Models",
        help_text=MODELS_HELP,
        to_field_name="name",
        error_messages={"invalid_choice": "%(value)s is not in the model catalog."},
        widget=forms.SelectMultiple(attrs={"size": 8}),
    )

    def __init__(self, *args, catalog, **kwargs) -> None:
        """`catalog`: the models to choose from (`Model.objects.restrict(user)`)."""
        super().__init__(*args, **kwargs)
        field = self.fields["models"]
        assert isinstance(field, forms.ModelMultipleChoiceField)
        field.queryset = catalog

    def clean(self):
        data = super().clean()
        data["models"] = [] if data.get("all_models") else list(data.get("models") or [])
        return data
