"""Forms of the console's resource groups, members, providers and models pages. Validation that
needs the database (taken names, existing members, the last owner, models in use) lives in
`gateway.services`; the views copy its errors onto the form field they name."""

from __future__ import annotations

from decimal import Decimal

from django import forms

from gateway.models import ProviderKind, Role

ROLE_CHOICES = [(role.value, role.label) for role in Role]


class GroupNameForm(forms.Form):
    """Create or rename a resource group: its `name` (1–100 characters, unique)."""

    name = forms.CharField(max_length=100, strip=True, error_messages={"required": "Enter a name for the group."})


class GroupDeleteForm(forms.Form):
    """Delete a group: the user types its name to confirm (SPEC §2's delete confirmation)."""

    confirm_name = forms.CharField(strip=True, error_messages={"required": "Type the group's name to delete it."})

    def __init__(self, *args, expected: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.expected = expected

    def clean_confirm_name(self) -> str:
        value = self.cleaned_data["confirm_name"]
        if value != self.expected:
            raise forms.ValidationError(f"Type {self.expected} exactly to delete this group.")
        return value


class InviteForm(forms.Form):
    """Add an existing user to a group: `user` (username or email, case-insensitive) and `role`."""

    user = forms.CharField(
        max_length=254, strip=True, error_messages={"required": "Enter the username or email of an existing user."}
    )
    role = forms.ChoiceField(choices=ROLE_CHOICES, initial=Role.DEVELOPER)


class RoleForm(forms.Form):
    """Change a member's `role`."""

    role = forms.ChoiceField(choices=ROLE_CHOICES)


class ProviderForm(forms.Form):
    """Add or edit a provider. `credential` is write-only: never put back in the form; on edit,
    blank keeps the stored one and `clear_credential` removes it."""

    name = forms.CharField(max_length=100, strip=True, error_messages={"required": "Enter a name for the provider."})
    kind = forms.ChoiceField(choices=[c for c in ProviderKind.choices if c[0] != ProviderKind.MOCK])
    base_url = forms.URLField(
        max_length=200,
        assume_scheme="https",
        error_messages={"required": "Enter the API's base URL, e.g. https://api.openai.com/v1."},
    )
    credential = forms.CharField(required=False, strip=True, widget=forms.PasswordInput(render_value=False))
    clear_credential = forms.BooleanField(required=False)


def _price_field(label: str) -> forms.DecimalField:
    return forms.DecimalField(
        required=False,
        min_value=Decimal(0),
        max_digits=14,
        decimal_places=6,
        label=label,
        error_messages={"min_value": "A price cannot be negative.", "invalid": "Enter a price in USD, e.g. 0.15."},
    )


class ModelForm(forms.Form):
    """Add or edit a model: the `name` applications ask for, the `upstream_model` the provider
    knows (default: the name), and prices in USD per million tokens. On add, leaving every price
    blank takes the defaults of the pricing library (genai-prices) for the upstream model."""

    name = forms.CharField(max_length=200, strip=True, error_messages={"required": "Enter the model's name."})
    upstream_model = forms.CharField(max_length=200, strip=True, required=False)
    input_price_per_mtok = _price_field("Input")
    cached_input_price_per_mtok = _price_field("Cached input")
    cache_write_price_per_mtok = _price_field("Cache writes")
    output_price_per_mtok = _price_field("Output")

    PRICE_FIELDS = (
        "input_price_per_mtok",
        "cached_input_price_per_mtok",
        "cache_write_price_per_mtok",
        "output_price_per_mtok",
    )
