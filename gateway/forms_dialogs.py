"""Forms of the gateway details dialogs (Manage expiration, Duplicate, Delete). They validate input
only; the writes happen in services. The API key dialogs' forms, and the expiry they share with
Manage expiration (`ExpiryForm`), are in `keys.forms`."""

from __future__ import annotations

from django import forms
from django.db.models import QuerySet

from gateway.models import Gateway
from keys.forms import ExpiryForm
from keys.models import ApiKey, ApiKeyStatus


class ApiKeyChoiceField(forms.ModelChoiceField):
    """Picks an API key, shown as `support-bot key (aigw_Ab12…) · expires 2026-04-01 12:00 UTC`."""

    def label_from_instance(self, obj) -> str:
        expiry = f"expires {obj.expires_at:%Y-%m-%d %H:%M} UTC" if obj.expires_at else "long-lived"
        return f"{obj.name} ({obj.prefix}…) · {expiry}"


class ManageExpirationForm(ExpiryForm):
    """Manage expiration of a gateway: one of its API keys (not revoked) and its new expiry."""

    api_key = ApiKeyChoiceField(
        queryset=ApiKey.objects.none(),
        label="API key",
        empty_label=None,
        error_messages={"invalid_choice": "Pick one of this gateway's API keys."},
    )

    def __init__(self, *args, api_keys: QuerySet[ApiKey], **kwargs) -> None:
        """`api_keys`: the gateway's keys the user may change (revoked ones are left out)."""
        super().__init__(*args, **kwargs)
        field = self.fields["api_key"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = api_keys.exclude(status=ApiKeyStatus.REVOKED).order_by("-created_at")


class DuplicateForm(forms.Form):
    """Duplicate: the copy's name (prefilled with `<name> (copy)`)."""

    name = forms.CharField(
        max_length=100,
        label="Name of the copy",
        error_messages={"required": "Enter a name for the copy."},
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )


class DeleteForm(forms.Form):
    """Delete: the gateway's name, typed to confirm (SPEC §2)."""

    confirm_name = forms.CharField(
        max_length=100,
        label="Type the gateway's name to confirm",
        strip=False,
        error_messages={"required": "Type the gateway's name to confirm."},
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )

    def __init__(self, *args, gateway: Gateway, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.gateway = gateway

    def clean_confirm_name(self) -> str:
        value = self.cleaned_data["confirm_name"]
        if value.strip() != self.gateway.name:
            raise forms.ValidationError(f"That is not this gateway's name. Type {self.gateway.name} to delete it.")
        return value
