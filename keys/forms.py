"""Console forms for personal API tokens."""

from __future__ import annotations

from django import forms
from django.utils import timezone


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
