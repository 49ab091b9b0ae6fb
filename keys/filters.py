"""The one FilterSet of API key lists, shared by the console's API keys page (`/api-keys/`) and
the management API's `GET /api/v1/api-keys`, like netbox's FilterSets.

Parameters (query string):
- `gateway`: a gateway id (digits), only that gateway's keys.
- `resource_group`: a resource group id (digits), only the keys of its gateways.
- `status`: `active`, `suspended`, `expired` or `revoked`, the *effective* status
  (`ApiKey.effective_status`): an active key past its `expires_at` is `expired`, not `active`,
  even before the job that marks expired keys has run.
- `q`: a part of the key's name, or the start of its visible prefix (`aigw_Ab12`).

An invalid value makes the FilterSet invalid with an error naming the parameter
(`{"gateway": ["A valid integer is required."]}`), which the API answers as a 400 and the console
ignores (the page shows every key, as for an absent filter).
"""

from __future__ import annotations

from datetime import datetime

import django_filters
from django import forms
from django.core.validators import RegexValidator
from django.db.models import Q, QuerySet
from django.utils import timezone

from keys.models import ApiKey, ApiKeyStatus

INTEGER_REQUIRED = "A valid integer is required."
STATUS_CHOICES_MESSAGE = f"Must be one of {', '.join(ApiKeyStatus.values)}."


def with_effective_status(keys: QuerySet[ApiKey], wanted: str, now: datetime | None = None) -> QuerySet[ApiKey]:
    """`keys` whose effective status (see `ApiKey.effective_status`) at `now` (aware UTC,
    default now) is `wanted`, one of `ApiKeyStatus`'s values.

    Raises:
        ValueError: for a status that is not one of `ApiKeyStatus`'s values.
    """
    now = now or timezone.now()
    past_expiry = Q(status=ApiKeyStatus.ACTIVE, expires_at__lte=now)
    if wanted == ApiKeyStatus.ACTIVE:
        return keys.filter(status=ApiKeyStatus.ACTIVE).exclude(past_expiry)
    if wanted == ApiKeyStatus.EXPIRED:
        return keys.filter(Q(status=ApiKeyStatus.EXPIRED) | past_expiry)
    if wanted in (ApiKeyStatus.SUSPENDED, ApiKeyStatus.REVOKED):
        return keys.filter(status=wanted)
    raise ValueError(f"unknown API key status {wanted!r}")


class IdField(forms.CharField):
    """An object id as the API has always read it: digits only, else `A valid integer is required.`"""

    default_validators = [RegexValidator(r"^[0-9]{1,18}\Z", INTEGER_REQUIRED)]


class IdFilter(django_filters.Filter):
    """Keys whose `field_name` equals an id given as digits."""

    field_class = IdField


class ApiKeyFilterSet(django_filters.FilterSet):
    """Filters of an API key list (see the module's docstring). Pass the restricted queryset
    (`keys.selectors.api_keys_for(user)`) as `queryset`: the filters only ever narrow it."""

    gateway = IdFilter(field_name="gateway_id")
    resource_group = IdFilter(field_name="gateway__resource_group_id")
    status = django_filters.ChoiceFilter(
        choices=ApiKeyStatus.choices,
        method="filter_status",
        error_messages={"invalid_choice": STATUS_CHOICES_MESSAGE},
    )
    q = django_filters.CharFilter(method="filter_query", max_length=100)

    class Meta:
        model = ApiKey
        fields = ["gateway", "resource_group", "status", "q"]

    def filter_status(self, queryset: QuerySet[ApiKey], name: str, value: str) -> QuerySet[ApiKey]:
        """The keys with the effective status `value`."""
        return with_effective_status(queryset, value)

    def filter_query(self, queryset: QuerySet[ApiKey], name: str, value: str) -> QuerySet[ApiKey]:
        """The keys whose name holds `value`, or whose visible prefix starts with it."""
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(Q(name__icontains=value) | Q(prefix__istartswith=value))
