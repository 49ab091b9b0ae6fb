"""The filters of usage events and audit events: one django-filter FilterSet each, shared by the
management API (`GET /api/v1/usage-events`, its CSV, `/usage/aggregates`, `/audit-events`) and
the console (Logs, Audit trail), so both accept the same query parameters with the same meaning
and the same messages.

Every parameter is optional and an empty value is ignored. Ids are positive integers; times are
ISO 8601 (a date means its UTC midnight, a datetime without an offset is UTC); `since` is
inclusive, `until` exclusive. An invalid value raises `core.errors.ValidationFailed` naming
every bad parameter (`{"<parameter>": ["<message>"]}`: a 400 in the API, a message above the
table in the console).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from typing import Any

import django_filters
from django import forms
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django_filters.constants import EMPTY_VALUES

from core.errors import ValidationFailed
from core.models import AuditEvent
from usage.models import UsageEvent

INSTANT_MESSAGE = "Enter an ISO 8601 datetime, e.g. 2026-11-01T00:00:00Z."
ID_MESSAGE = "A valid integer is required."
STATUS_MESSAGE = 'Must be "success", "error" or an HTTP status code (100-599).'
_SPACE_FOR_PLUS = re.compile(r"^(.+T[0-9:.]+) ([0-9]{2}(:?[0-9]{2})?)$")


def parse_instant(raw: str) -> datetime | None:
    """An ISO 8601 datetime (or a date: its UTC midnight) as an aware UTC datetime, naive meaning
    UTC; None when `raw` is not one. An unencoded `+00:00` that arrived as ` 00:00` is read as
    the offset it was."""
    raw = _SPACE_FOR_PLUS.sub(r"\1+\2", raw.strip())
    try:
        value = parse_datetime(raw)
        if value is None:
            day = parse_date(raw)
            value = datetime.combine(day, time.min) if isinstance(day, date) else None
    except ValueError:
        return None
    if value is None:
        return None
    if timezone.is_naive(value):
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class IdField(forms.Field):
    """A positive integer id below 2**63 written in ASCII digits (no sign, no decimals)."""

    default_error_messages = {"invalid": ID_MESSAGE}

    def to_python(self, value: Any) -> int | None:
        if value in self.empty_values:
            return None
        text = str(value)
        if not (text.isascii() and text.isdigit()) or not 1 <= int(text) < 2**63:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return int(text)


class InstantField(forms.Field):
    """An ISO 8601 datetime or date, as an aware UTC datetime (see `parse_instant`)."""

    default_error_messages = {"invalid": INSTANT_MESSAGE}

    def to_python(self, value: Any) -> datetime | None:
        if value in self.empty_values:
            return None
        instant = parse_instant(str(value))
        if instant is None:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return instant


class StatusField(forms.Field):
    """`success`, `error` or one HTTP status code (100-599, returned as an int)."""

    default_error_messages = {"invalid": STATUS_MESSAGE}

    def to_python(self, value: Any) -> str | int | None:
        if value in self.empty_values:
            return None
        text = str(value)
        if text in ("success", "error"):
            return text
        if text.isascii() and text.isdigit() and 100 <= int(text) <= 599:
            return int(text)
        raise forms.ValidationError(self.error_messages["invalid"], code="invalid")


class IdFilter(django_filters.Filter):
    """Objects whose `field_name` (an id column) equals the id given."""

    field_class = IdField


class InstantFilter(django_filters.Filter):
    """Objects whose `field_name` compares by `lookup_expr` (`gte`, `lt`) to the UTC time given."""

    field_class = InstantField


class StatusFilter(django_filters.Filter):
    """Usage events by outcome: `success` (status code < 400), `error` (>= 400) or one code."""

    field_class = StatusField

    def filter(self, qs: QuerySet, value: Any) -> QuerySet:
        if value in EMPTY_VALUES:
            return qs
        if value == "success":
            return qs.filter(status_code__lt=400)
        if value == "error":
            return qs.filter(status_code__gte=400)
        return qs.filter(status_code=value)


class StrictFilterSet(django_filters.FilterSet):
    """A FilterSet whose invalid values raise the service error family instead of filtering
    nothing, so the API and the console report them the same way."""

    def filtered(self) -> QuerySet:
        """The queryset narrowed by every filter given.

        Raises:
            ValidationFailed: naming each invalid parameter, with its messages.
        """
        if not self.is_valid():
            raise ValidationFailed({name: list(messages) for name, messages in self.errors.items()})
        return self.qs

    @property
    def values(self) -> dict[str, Any]:
        """The valid filters given, parsed (ids as int, times as aware UTC datetimes), without
        the empty ones. Only after `filtered()`."""
        return {name: value for name, value in self.form.cleaned_data.items() if value not in EMPTY_VALUES}


class UsageEventFilterSet(StrictFilterSet):
    """Usage events by `resource_group`, `gateway`, `api_key` (ids), `model` (the model asked,
    exact), `status` (`success`, `error` or a status code), `error_code` (exact), `since`
    (inclusive) and `until` (exclusive) on `created_at`."""

    resource_group = IdFilter(field_name="resource_group_id")
    gateway = IdFilter(field_name="gateway_id")
    api_key = IdFilter(field_name="api_key_id")
    model = django_filters.CharFilter(field_name="model_requested")
    status = StatusFilter()
    error_code = django_filters.CharFilter(field_name="error_code")
    since = InstantFilter(field_name="created_at", lookup_expr="gte")
    until = InstantFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = UsageEvent
        fields: list[str] = []


class AuditEventFilterSet(StrictFilterSet):
    """Audit events by `resource_group`, `actor` (user id), `action`, `target_type`, `target_id`
    (exact), `since` (inclusive) and `until` (exclusive) on `created_at`."""

    resource_group = IdFilter(field_name="resource_group_id")
    actor = IdFilter(field_name="actor_id")
    action = django_filters.CharFilter(field_name="action")
    target_type = django_filters.CharFilter(field_name="target_type")
    target_id = django_filters.CharFilter(field_name="target_id")
    since = InstantFilter(field_name="created_at", lookup_expr="gte")
    until = InstantFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields: list[str] = []
