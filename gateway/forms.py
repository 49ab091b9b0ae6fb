"""Console forms. They validate input only; the writes happen in services."""

from __future__ import annotations

from datetime import UTC

from django import forms
from django.utils import timezone

from gateway.models import Gateway, ResourceGroup
from keys.expiry import EXPIRES_IN_CHOICES, expires_at_for

QUOTA_REQUIRED = "Enter a positive number of tokens, or tick Unlimited quota."


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
        "accept_terms": 5,
    }

    def __init__(self, *args, groups, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["resource_group"].queryset = groups

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
        name, group = data.get("name"), data.get("resource_group")
        taken = Gateway.objects.filter(resource_group=group, name=name, deleted_at__isnull=True)
        if name and group and taken.exists():
            self.add_error("name", f"A gateway named '{name}' already exists in {group}.")
        return data

    def first_error_step(self) -> int:
        return min((self.STEPS.get(field, 1) for field in self.errors), default=1)
