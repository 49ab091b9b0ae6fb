"""Usage events, usage aggregates and the audit trail in the management API (SPEC §5, §7), under
`/api/v1/`. Everything here is read-only: other methods are 405.

- `GET /usage-events` (cursor pagination, newest first, or the whole filtered set as CSV with
  `?format=csv` or `Accept: text/csv`) and `GET /usage-events/<id>`.
- `GET /usage/aggregates`: requests, errors, tokens by type and cost per UTC hour or day,
  optionally per API key, model, gateway or resource group.
- `GET /audit-events` (cursor pagination, newest first) and `GET /audit-events/<id>`.

Units everywhere: tokens are integers, `cost_usd` is USD as a Decimal string (10 decimal places,
never a float), times are ISO 8601 UTC. Filters given as query parameters; an invalid value is a
400 `{"<parameter>": ["<message>"]}`; `since` is inclusive, `until` exclusive, a datetime without
an offset is UTC.

Visibility follows the one policy (`core.permissions`, read through `usage.selectors`): usage
events and aggregates need `Action.VIEW_USAGE` in their resource group (owners, admins,
developers, auditors), audit events `Action.VIEW_AUDIT` (owners, admins, auditors); events of no
resource group (providers, models) are for platform admins. A list is a 403 for a user who may
do its action in no group (viewers; developers on the audit trail) and otherwise holds only the
groups where they may; a filter or an event of a group whose settings the user sees but whose
usage (or trail) they may not read is a 403; another group's event is a 404, as a missing one.
Filters are `usage.filters`' FilterSets, pages `core.pagination`'s cursor pager, both shared
with the console.
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Generator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import islice
from typing import Any, cast

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.db.models import Q, QuerySet, Sum
from django.db.models.functions import TruncDay, TruncHour
from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import renderers, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from core.api import ManagementView
from core.errors import ValidationFailed
from core.models import AuditEvent
from core.pagination import NewestFirstPagination
from core.permissions import Action
from usage.filters import AuditEventFilterSet, UsageEventFilterSet
from usage.models import TOKEN_FIELDS, UsageEvent
from usage.rollups import usage_series
from usage.selectors import (
    audit_event_get,
    audit_events_listed,
    filtered_in_scope,
    usage_event_get,
    usage_events_listed,
)

CSV_FILENAME = "usage-events.csv"
CSV_CHUNK_SIZE = 2000
DEFAULT_AGGREGATE_DAYS = 7
# A cell starting with one of these is a formula to spreadsheet programs (CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class CsvRenderer(renderers.BaseRenderer):
    """Lets content negotiation accept `?format=csv` and `Accept: text/csv`; the CSV itself is
    streamed by the view, and errors are rendered as JSON (see `_UsageView.finalize_response`)."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        """Only reached for a response that is not the streamed CSV: render it as JSON."""
        return renderers.JSONRenderer().render(data)


# Serializers --------------------------------------------------------------------------------


class UsageEventSerializer(serializers.ModelSerializer):
    """One usage event (SPEC §7): `created_at` in UTC; `resource_group`, `gateway`, `api_key` are
    ids (`api_key_name` is the key's name at the time; all three null for the refusal of a missing
    or unknown key, which platform admins alone read); tokens are integers; `cost_usd` is USD as
    a Decimal string at the price in force then; `latency_ms` and `time_to_first_token_ms` in
    milliseconds; `requests` is 1, or the number of refusals an aggregate row of a refusal flood
    counts; `client_address` the caller's IP address."""

    cost_usd = serializers.DecimalField(max_digits=20, decimal_places=10, coerce_to_string=True, read_only=True)

    class Meta:
        model = UsageEvent
        fields = [
            "id",
            "request_id",
            "created_at",
            "resource_group",
            "gateway",
            "api_key",
            "api_key_name",
            "endpoint",
            "model_requested",
            "provider",
            "model_served",
            "stream",
            "status_code",
            "error_code",
            "input_tokens",
            "cached_input_tokens",
            "cache_write_tokens",
            "output_tokens",
            "reasoning_tokens",
            "total_tokens",
            "cost_usd",
            "latency_ms",
            "time_to_first_token_ms",
            "upstream_request_id",
            "client_disconnected",
            "requests",
            "client_address",
        ]
        read_only_fields = fields


@extend_schema_field(
    {
        "oneOf": [{"type": "integer"}, {"type": "string"}],
        "nullable": True,
        "description": "The group's value: an id (api_key, gateway, resource_group), the model asked "
        "(model), or null without `group_by`.",
    }
)
class _BucketKeyField(serializers.Field):
    """The `group_by` value of an aggregate row, as stored (an id or a model name)."""

    def to_representation(self, value):
        return value


class UsageBucketSerializer(serializers.Serializer):
    """One aggregate row: the UTC hour or day starting at `start`, for one `key` of `group_by`.
    `requests` and `errors` (status >= 400) are counts; the token fields are sums of tokens;
    `cost_usd` is the USD sum as a Decimal string."""

    start = serializers.DateTimeField()
    key = _BucketKeyField()
    requests = serializers.IntegerField()
    errors = serializers.IntegerField()  # type: ignore[assignment]  # a field; the metaclass removes the attribute
    input_tokens = serializers.IntegerField()
    cached_input_tokens = serializers.IntegerField()
    cache_write_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    reasoning_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    cost_usd = serializers.DecimalField(max_digits=30, decimal_places=10, coerce_to_string=True)


class UsageAggregatesSerializer(serializers.Serializer):
    """`GET /usage/aggregates`: the `bucket` size, the `group_by` dimension (or null), the UTC
    window used (`until` null means up to now) and the rows ordered by `start`, then `key`."""

    bucket = serializers.ChoiceField(choices=["hour", "day"])
    group_by = serializers.ChoiceField(choices=["api_key", "model", "gateway", "resource_group"], allow_null=True)
    since = serializers.DateTimeField()
    until = serializers.DateTimeField(allow_null=True)
    results = UsageBucketSerializer(many=True)


class AuditEventSerializer(serializers.ModelSerializer):
    """One audit event (SPEC §7): when (UTC), who (`actor` user id, null for aigw itself, and
    `actor_name` as it was), through what (`via`), the `action`, its target, the `resource_group`
    id (null for instance-wide objects) and the target's fields `before` and `after` (JSON
    objects; null for a creation's `before` and a removal's `after`; never secrets)."""

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "created_at",
            "actor",
            "actor_name",
            "via",
            "action",
            "target_type",
            "target_id",
            "target_name",
            "resource_group",
            "before",
            "after",
            "ip_address",
        ]
        read_only_fields = fields


# CSV ----------------------------------------------------------------------------------------

CSV_COLUMNS = UsageEventSerializer.Meta.fields
_CSV_VALUES = [
    {"resource_group": "resource_group_id", "gateway": "gateway_id", "api_key": "api_key_id"}.get(c, c)
    for c in CSV_COLUMNS
]


class _Echo:
    """A file-like object whose `write` returns the line, for csv.writer in a generator."""

    def write(self, value: str) -> str:
        return value


def csv_cell(value: Any) -> Any:
    """A value as a CSV cell: UTC datetimes in ISO 8601 (`Z`), Decimals exact (no float), booleans
    `true`/`false`, None empty; text that a spreadsheet would run as a formula (starting with
    `=`, `+`, `-`, `@`, tab or CR) gets a leading `'`."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _csv_line(writer, row) -> str:
    return writer.writerow([csv_cell(value) for value in row])


def _csv_lines(queryset: QuerySet) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for row in queryset.iterator(chunk_size=CSV_CHUNK_SIZE):
        yield _csv_line(writer, row)


async def _csv_lines_async(queryset: QuerySet) -> AsyncIterator[str]:
    # Not `aiterator()`: for values_list() querysets it runs the query in the event loop. The
    # sync iterator is advanced a chunk at a time in Django's thread, like aiterator does.
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    rows = cast(Generator[Any, None, None], queryset.iterator(chunk_size=CSV_CHUNK_SIZE))
    next_chunk = sync_to_async(lambda: list(islice(rows, CSV_CHUNK_SIZE)))
    try:
        while chunk := await next_chunk():
            for row in chunk:
                yield _csv_line(writer, row)
    finally:
        await sync_to_async(rows.close)()  # the server-side cursor, also when the client goes away


def usage_events_csv(queryset: QuerySet[UsageEvent], *, asynchronous: bool) -> StreamingHttpResponse:
    """The events of `queryset` as a streamed CSV attachment (`usage-events.csv`): a header row
    with the JSON field names, then one row per event, read `CSV_CHUNK_SIZE` at a time (the
    table is never held in memory). `asynchronous`: stream from an async iterator, for ASGI
    servers (Django would otherwise buffer a sync iterator whole)."""
    rows = queryset.values_list(*_CSV_VALUES)
    content = _csv_lines_async(rows) if asynchronous else _csv_lines(rows)
    response = StreamingHttpResponse(content, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{CSV_FILENAME}"'
    return response


# Aggregates ---------------------------------------------------------------------------------

BUCKETS = {"hour": TruncHour, "day": TruncDay}
GROUP_BY_FIELDS = {
    "api_key": "api_key_id",
    "model": "model_requested",
    "gateway": "gateway_id",
    "resource_group": "resource_group_id",
}


def usage_aggregates(queryset: QuerySet[UsageEvent], *, bucket: str, group_by: str | None) -> list[dict]:
    """Sums of `queryset` per UTC `bucket` (`hour` or `day`) and, with `group_by`, per API key,
    model, gateway or resource group: `requests`, `errors` (status >= 400), tokens by type and
    `cost_usd` (Decimal USD), ordered by `start`, then `key`. Aggregated in the database."""
    key_field = GROUP_BY_FIELDS[group_by] if group_by else None
    columns = ["start", key_field] if key_field else ["start"]
    rows = (
        queryset.order_by()
        .annotate(start=BUCKETS[bucket]("created_at", tzinfo=UTC))
        .values(*columns)
        .annotate(
            errors=Sum("requests", filter=Q(status_code__gte=400)),  # before `requests` hides the column
            requests=Sum("requests"),
            cost_usd=Sum("cost_usd"),
            **{f"sum_{field}": Sum(field) for field in TOKEN_FIELDS},
        )
        .order_by(*columns)
    )
    return [
        {
            "start": row["start"],
            "key": row[key_field] if key_field else None,
            "requests": int(row["requests"] or 0),
            "errors": int(row["errors"] or 0),
            **{field: int(row[f"sum_{field}"] or 0) for field in TOKEN_FIELDS},
            "cost_usd": row["cost_usd"] if row["cost_usd"] is not None else Decimal(0),
        }
        for row in rows
    ]


def _aggregates_from_rollups(
    user, filters: dict[str, Any], since, until, bucket: str, group_by: str | None
) -> list[dict]:
    """`usage_aggregates`' rows read through `usage.rollups.usage_series`: hourly and daily
    rollups for the whole clean hours and days, raw events for the rest, all restricted to what
    `user` may read. `filters`: the parsed values of `UsageEventFilterSet` (already validated)."""
    rollup_filters: dict[str, Any] = {
        name: filters[name] for name in ("resource_group", "gateway", "api_key", "model") if name in filters
    }
    points = usage_series(
        since=since,
        until=until or timezone.now(),
        bucket=bucket,
        group_by=group_by,
        filters=rollup_filters,
        user=user,
    )
    return [
        {
            "start": point.start,
            "key": point.key,
            "requests": point.requests,
            "errors": point.errors,
            **{field: getattr(point, field) for field in TOKEN_FIELDS},
            "cost_usd": point.cost_usd,
        }
        for point in points
    ]


# Schema pieces ------------------------------------------------------------------------------

_TIME_PARAMETERS = [
    OpenApiParameter(
        "since",
        OpenApiTypes.DATETIME,
        description="Only events at or after this time (ISO 8601; without an offset: UTC).",
    ),
    OpenApiParameter(
        "until",
        OpenApiTypes.DATETIME,
        description="Only events before this time (exclusive; ISO 8601; without an offset: UTC).",
    ),
]
_USAGE_FILTERS = [
    OpenApiParameter("resource_group", OpenApiTypes.INT, description="Only events of this resource group (id)."),
    OpenApiParameter("gateway", OpenApiTypes.INT, description="Only events of this gateway (id)."),
    OpenApiParameter("api_key", OpenApiTypes.INT, description="Only events of this API key (id)."),
    OpenApiParameter("model", OpenApiTypes.STR, description="Only events asking for this model (exact)."),
    OpenApiParameter(
        "status",
        OpenApiTypes.STR,
        description="`success` (status code < 400), `error` (>= 400) or one HTTP status code, e.g. `429`.",
    ),
    OpenApiParameter(
        "error_code", OpenApiTypes.STR, description="Only events with this error code, e.g. `rate_limited`."
    ),
    *_TIME_PARAMETERS,
]
_USAGE_EVENT_EXAMPLE = {
    "id": 1042,
    "request_id": "req_8f14e45fceea167a5a36dedd4bea2543",
    "created_at": "2026-11-01T09:30:12.345000Z",
    "resource_group": 1,
    "gateway": 3,
    "api_key": 7,
    "api_key_name": "support-bot prod",
    "endpoint": "chat.completions",
    "model_requested": "openai/gpt-4o-mini",
    "provider": "openai",
    "model_served": "gpt-4o-mini-2024-07-18",
    "stream": True,
    "status_code": 200,
    "error_code": "",
    "input_tokens": 1200,
    "cached_input_tokens": 1024,
    "cache_write_tokens": 0,
    "output_tokens": 300,
    "reasoning_tokens": 0,
    "total_tokens": 1500,
    "cost_usd": "0.0002580000",
    "latency_ms": 1840,
    "time_to_first_token_ms": 310,
    "upstream_request_id": "chatcmpl-AbC123",
    "client_disconnected": False,
}
_AUDIT_EVENT_EXAMPLE = {
    "id": 88,
    "created_at": "2026-11-01T10:02:00Z",
    "actor": 4,
    "actor_name": "ada",
    "via": "api",
    "action": "spend_budget.update",
    "target_type": "api_key",
    "target_id": "7",
    "target_name": "support-bot prod",
    "resource_group": 1,
    "before": {"limit_usd": "10", "refresh_period": "monthly"},
    "after": {"limit_usd": "50", "refresh_period": "monthly"},
    "ip_address": "203.0.113.9",
}


# Views --------------------------------------------------------------------------------------


def _usage_events(request: Request) -> QuerySet[UsageEvent]:
    """The usage events `request.user` may read, narrowed by the request's filters.

    Raises:
        PermissionDenied: when the user reads usage in no group, or a filter names a group,
            gateway or API key of theirs whose usage they may not read (403).
        ValidationFailed: for invalid filters, each named (400).
    """
    filterset = UsageEventFilterSet(request.query_params, queryset=usage_events_listed(request.user))
    return filtered_in_scope(request.user, Action.VIEW_USAGE, filterset)


class UsageEventListView(ManagementView):
    """`GET /api/v1/usage-events`: the usage events of the user's resource groups, newest first,
    a cursor page at a time, or all of them (same filters) as CSV with `?format=csv` or
    `Accept: text/csv`."""

    serializer_class = UsageEventSerializer
    pagination_class = NewestFirstPagination
    renderer_classes = [renderers.JSONRenderer, renderers.BrowsableAPIRenderer, CsvRenderer]

    def finalize_response(self, request, response, *args, **kwargs):
        """Errors of a CSV request (a 400 for a bad filter…) are JSON, as everywhere else."""
        if isinstance(response, Response) and isinstance(getattr(request, "accepted_renderer", None), CsvRenderer):
            request.accepted_renderer = renderers.JSONRenderer()
            request.accepted_media_type = request.accepted_renderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)

    @extend_schema(
        summary="List usage events",
        description="The usage events of the resource groups where the user may read usage (owner, admin, "
        "developer, auditor), newest first, "
        "with cursor pagination (follow `next`). `?format=csv` (or `Accept: text/csv`) streams every "
        "matching event as a CSV attachment instead, without pagination. Tokens are integers, "
        "`cost_usd` is USD as a Decimal string, times are UTC.",
        parameters=[
            *_USAGE_FILTERS,
            OpenApiParameter(
                "format",
                OpenApiTypes.STR,
                enum=["json", "csv"],
                description="`csv`: every matching event as `usage-events.csv` (text cells that start like "
                "a spreadsheet formula are prefixed with `'`).",
            ),
        ],
        responses={
            (200, "application/json"): UsageEventSerializer(many=True),
            (200, "text/csv"): OpenApiTypes.STR,
            400: OpenApiResponse(description='A filter is invalid: `{"<parameter>": ["<message>"]}`.'),
            403: OpenApiResponse(
                description="The user reads usage in no group (a viewer), or a filter names a group, gateway or "
                "API key of theirs whose usage their role may not read."
            ),
            404: OpenApiResponse(description='The cursor is invalid: `{"detail": "Invalid cursor"}`.'),
        },
        examples=[
            OpenApiExample(
                "A successful streamed request",
                response_only=True,
                media_type="application/json",
                value=_USAGE_EVENT_EXAMPLE,
            ),
            OpenApiExample(
                "CSV export",
                response_only=True,
                media_type="text/csv",
                value=",".join(CSV_COLUMNS) + "\n1042,req_8f14e45f,2026-11-01T09:30:12.345000Z,1,3,7,"
                "support-bot prod,chat.completions,openai/gpt-4o-mini,openai,gpt-4o-mini-2024-07-18,true,"
                "200,,1200,1024,0,300,0,1500,0.0002580000,1840,310,chatcmpl-AbC123,false\n",
            ),
        ],
    )
    def get(self, request: Request) -> Response | StreamingHttpResponse:
        """List the usage events, a cursor page at a time, or all of them as CSV."""
        events = _usage_events(request)
        if isinstance(request.accepted_renderer, CsvRenderer):
            return usage_events_csv(events, asynchronous=isinstance(request._request, ASGIRequest))
        page = self.paginate_queryset(events)
        return self.get_paginated_response(UsageEventSerializer(page, many=True).data)


class UsageEventDetailView(ManagementView):
    """`GET /api/v1/usage-events/<id>`: one usage event of the user's resource groups."""

    serializer_class = UsageEventSerializer

    @extend_schema(
        summary="Get a usage event",
        description="One usage event, if the user may read the usage of its resource group; 403 in a group "
        "where their role may not (a viewer's), 404 in another group or for no such event.",
        responses={
            200: UsageEventSerializer,
            403: OpenApiResponse(description="The event is in a group where the user's role may not read usage."),
            404: OpenApiResponse(description="No such usage event, or one of a resource group the user is not in."),
        },
        examples=[OpenApiExample("A usage event", response_only=True, value=_USAGE_EVENT_EXAMPLE)],
    )
    def get(self, request: Request, pk: int) -> Response:
        """The usage event."""
        return Response(UsageEventSerializer(usage_event_get(request.user, pk)).data)


class UsageAggregatesView(ManagementView):
    """`GET /api/v1/usage/aggregates`: usage per UTC hour or day, optionally per API key, model,
    gateway or resource group, over the events the user may see (the last 7 days by default)."""

    serializer_class = UsageAggregatesSerializer

    @extend_schema(
        summary="Aggregate usage by hour or day",
        description="Requests, errors (status >= 400), tokens by type and cost (USD Decimal string) per UTC "
        "`bucket`, and per `group_by` value when given, over the usage events the user may see. Takes the "
        "same filters as `/usage-events`; without `since` the window starts 7 days ago. Rows are ordered by "
        "`start`, then `key`; buckets without events are absent.",
        parameters=[
            OpenApiParameter(
                "bucket", OpenApiTypes.STR, enum=list(BUCKETS), description="Bucket size (default `day`)."
            ),
            OpenApiParameter(
                "group_by",
                OpenApiTypes.STR,
                enum=list(GROUP_BY_FIELDS),
                description="Split each bucket by API key, model asked, gateway or resource group.",
            ),
            *_USAGE_FILTERS,
        ],
        responses={
            200: UsageAggregatesSerializer,
            400: OpenApiResponse(description='A parameter is invalid: `{"<parameter>": ["<message>"]}`.'),
            403: OpenApiResponse(
                description="The user reads usage in no group (a viewer), or a filter names a group, gateway or "
                "API key of theirs whose usage their role may not read."
            ),
        },
        examples=[
            OpenApiExample(
                "Daily usage per model",
                response_only=True,
                value={
                    "bucket": "day",
                    "group_by": "model",
                    "since": "2026-10-26T00:00:00Z",
                    "until": None,
                    "results": [
                        {
                            "start": "2026-11-01T00:00:00Z",
                            "key": "mock/echo",
                            "requests": 120,
                            "errors": 3,
                            "input_tokens": 9000,
                            "cached_input_tokens": 2048,
                            "cache_write_tokens": 0,
                            "output_tokens": 3000,
                            "reasoning_tokens": 0,
                            "total_tokens": 12000,
                            "cost_usd": "0.0420000000",
                        }
                    ],
                },
            )
        ],
    )
    def get(self, request: Request) -> Response:
        """The aggregates."""
        params = request.query_params
        bucket = params.get("bucket") or "day"
        group_by = params.get("group_by") or None
        errors = {}
        if bucket not in BUCKETS:
            errors["bucket"] = [f"Must be one of {', '.join(BUCKETS)}."]
        if group_by is not None and group_by not in GROUP_BY_FIELDS:
            errors["group_by"] = [f"Must be one of {', '.join(GROUP_BY_FIELDS)}."]
        if errors:
            raise ValidationFailed(errors)
        filterset = UsageEventFilterSet(params, queryset=usage_events_listed(request.user))
        events = filtered_in_scope(request.user, Action.VIEW_USAGE, filterset)  # validates every filter
        filters = filterset.values
        since = filters.get("since")
        if since is None:
            since = timezone.now().astimezone(UTC) - timedelta(days=DEFAULT_AGGREGATE_DAYS)
            events = events.filter(created_at__gte=since)
        until = filters.get("until")
        if "status" in filters or "error_code" in filters:
            # Rollups are not split by status: these filters read the raw events.
            results = usage_aggregates(events, bucket=bucket, group_by=group_by)
        else:
            results = _aggregates_from_rollups(request.user, filters, since, until, bucket, group_by)
        data = {"bucket": bucket, "group_by": group_by, "since": since, "until": until, "results": results}
        return Response(UsageAggregatesSerializer(data).data)


class AuditEventListView(ManagementView):
    """`GET /api/v1/audit-events`: the audit trail the user may read, newest first (read-only)."""

    serializer_class = AuditEventSerializer
    pagination_class = NewestFirstPagination

    @extend_schema(
        summary="List audit events",
        description="Every change to gateways, API keys, limits, providers, models, members and roles, newest "
        "first, with cursor pagination. Shows the events of the resource groups where the user is owner, admin "
        "or auditor; the instance-wide ones (providers, models) only to platform admins, who see every group. "
        "A user with none of these roles anywhere (developers, viewers) gets 403. Nobody can change the trail.",
        parameters=[
            OpenApiParameter(
                "resource_group", OpenApiTypes.INT, description="Only events of this resource group (id)."
            ),
            OpenApiParameter("actor", OpenApiTypes.INT, description="Only changes made by this user (id)."),
            OpenApiParameter("action", OpenApiTypes.STR, description="Only this action, e.g. `gateway.create`."),
            OpenApiParameter("target_type", OpenApiTypes.STR, description="Only changes to this kind of object."),
            OpenApiParameter("target_id", OpenApiTypes.STR, description="Only changes to the object with this id."),
            *[
                OpenApiParameter(p.name, p.type, description=str(p.description).replace("events", "changes"))
                for p in _TIME_PARAMETERS
            ],
        ],
        responses={
            200: AuditEventSerializer(many=True),
            400: OpenApiResponse(description='A filter is invalid: `{"<parameter>": ["<message>"]}`.'),
            403: OpenApiResponse(
                description="The user reads the audit trail of no group (developers, viewers), or "
                "`resource_group` names one of theirs whose trail their role may not read."
            ),
            404: OpenApiResponse(description='The cursor is invalid: `{"detail": "Invalid cursor"}`.'),
        },
        examples=[OpenApiExample("A budget raised through the API", response_only=True, value=_AUDIT_EVENT_EXAMPLE)],
    )
    def get(self, request: Request) -> Response:
        """List the audit events, a cursor page at a time."""
        filterset = AuditEventFilterSet(request.query_params, queryset=audit_events_listed(request.user))
        events = filtered_in_scope(request.user, Action.VIEW_AUDIT, filterset)
        page = self.paginate_queryset(events)
        return self.get_paginated_response(AuditEventSerializer(page, many=True).data)


class AuditEventDetailView(ManagementView):
    """`GET /api/v1/audit-events/<id>`: one audit event the user may read (read-only)."""

    serializer_class = AuditEventSerializer

    @extend_schema(
        summary="Get an audit event",
        description="One audit event, if the user may read it (see the list); 403 in a group of theirs "
        "where their role may not, else 404.",
        responses={
            200: AuditEventSerializer,
            403: OpenApiResponse(description="The event is in a group where the user's role may not read the trail."),
            404: OpenApiResponse(description="No such audit event, or one of a group the user is not in."),
        },
        examples=[OpenApiExample("An audit event", response_only=True, value=_AUDIT_EVENT_EXAMPLE)],
    )
    def get(self, request: Request, pk: int) -> Response:
        """The audit event."""
        return Response(AuditEventSerializer(audit_event_get(request.user, pk)).data)
