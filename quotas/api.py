"""The Vercel-compatible quotas API (SPEC §5): spend budgets of API keys at `/api/v1/quotas`.

Mirrors Vercel's AI Gateway Quotas API (`/v1/quotas`), keyed by `quotaEntityId` =
`api_key_id_<API key id>`:

- `GET ?quotaEntityId=…` → 200 the quota; 404 `{"error": "Quota not found"}` without a live budget.
- `POST {"quotaEntityId", "limitAmount", "refreshPeriod"?, "mode"?, "active"?}` → 201 the quota;
  409 when the key has a budget, archived ones included.
- `PATCH ?quotaEntityId=…` with any of `limitAmount`, `refreshPeriod`, `mode`, `active`, `archived`
  → 200 the quota; `{"archived": false, …}` restores a removed budget.
- `DELETE ?quotaEntityId=…` → 200 `{"quotaEntityId", "archived": true}`; the key is unlimited again.

A quota is `{"quotaEntityId", "apiKeyName", "limitAmount", "currentSpend", "refreshPeriod", "active"}`
with amounts in USD as JSON numbers (Decimal in Python up to the renderer). Every error is
`{"error": "<sentence>"}`, and every 400 also names the offending field: `{"error": "limitAmount
must be at least 1 USD.", "field": "limitAmount"}` (`"field": null` when the body as a whole is
wrong), rendered by the management API's one exception handler (`core.api_errors`, with
`error_shape = "vercel"`). Writes go through `quotas.services`; roles come from
`core.permissions`, and the key is read through `keys.selectors` (the policy's `restrict`).
"""

from __future__ import annotations

import codecs
import json
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import exceptions, serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import Conflict, NotFound
from core.idempotency import IDEMPOTENCY_KEY_PARAMETER, idempotent
from core.permissions import Action, User, require
from keys.models import ApiKey
from keys.selectors import api_key_for
from quotas.models import Level, LimitMode, RefreshPeriod, SpendBudget
from quotas.periods import window_start
from quotas.selectors import used_in_window
from quotas.services import spend_budget_archive, spend_budget_create, spend_budget_update

QUOTA_NOT_FOUND = "Quota not found"
API_KEY_NOT_FOUND = "API key not found"
QUOTA_EXISTS = (
    "Quota already exists for this API key; change it with PATCH, "
    'or restore a removed one with PATCH {"archived": false, "active": true}'
)
MANAGE_DENIED = "Changing a spend budget needs the owner or admin role in the API key's resource group"

_QUOTA_ENTITY_ID = re.compile(r"api_key_id_([1-9][0-9]*)", re.ASCII)
_MAX_KEY_ID = 2**63 - 1  # BigAutoField

# Service (model) field names → the API's names, so a service's ValidationError names the API field.
_API_FIELDS = {"limit_usd": "limitAmount", "refresh_period": "refreshPeriod", "mode": "mode", "active": "active"}
# The API's PATCH fields → `spend_budget_update` keyword arguments.
_UPDATE_ARGUMENTS = {
    "limitAmount": "limit_usd",
    "refreshPeriod": "refresh_period",
    "mode": "mode",
    "active": "active",
    "archived": "archived",
}


# Parsing ------------------------------------------------------------------------------------


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


class DecimalJSONParser(JSONParser):
    """Strict JSON bodies whose numbers with a fraction are read as `Decimal`, never `float`,
    so `{"limitAmount": 10.1}` is exactly 10.1 USD. NaN and Infinity are rejected (400)."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return json.load(codecs.getreader(encoding)(stream), parse_float=Decimal, parse_constant=_reject_constant)
        except ValueError as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from exc


def field_error(field: str | None, message: str) -> exceptions.ValidationError:
    """A 400 naming `field` (an API field name), with `message` read after it ("is required")."""
    return exceptions.ValidationError({field: [message]} if field else [message])


def parse_quota_entity_id(value) -> int | None:
    """The API key id in a `quotaEntityId` (`api_key_id_<id>`, Vercel's format).

    Returns None for a well-formed id that cannot exist (beyond the database's id range), which
    callers treat like any unknown key (404).

    Raises:
        ValidationError: 400 naming `quotaEntityId` when it is missing or malformed.
    """
    if value is None or value == "":
        raise field_error("quotaEntityId", "is required")
    match = _QUOTA_ENTITY_ID.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise field_error("quotaEntityId", "must be api_key_id_ followed by an API key id, e.g. api_key_id_42")
    digits = match.group(1)
    if len(digits) > len(str(_MAX_KEY_ID)) or int(digits) > _MAX_KEY_ID:
        return None
    return int(digits)


class AmountField(serializers.DecimalField):
    """An amount in USD sent as a JSON number (not a string, not a boolean), stored with at most
    4 decimal places and 10 whole digits (`SpendBudget.limit_usd`). The minimum of 1 USD is the
    service's rule (`quotas.services`), not this field's."""

    default_error_messages = {
        "invalid": "must be a number",
        "max_digits": "must be less than 10000000000 with at most 4 decimal places",
        "max_whole_digits": "must be less than 10000000000",
        "max_decimal_places": "may have at most 4 decimal places",
        "max_string_length": "must be a number",
    }

    def __init__(self, **kwargs):
        super().__init__(max_digits=14, decimal_places=4, **kwargs)

    def to_internal_value(self, data) -> Decimal:
        if isinstance(data, bool) or not isinstance(data, int | Decimal | float):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """A JSON `true` or `false` only: not `"true"`, `1` or `"yes"`, which DRF would accept."""

    default_error_messages = {"invalid": "must be true or false"}

    def to_internal_value(self, data) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class NameField(serializers.CharField):
    """A string; which values are allowed (refresh periods, modes) is the service's rule."""

    default_error_messages = {"invalid": "must be a string"}

    def to_internal_value(self, data) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class QuotaCreateSerializer(serializers.Serializer):
    """POST body (besides `quotaEntityId`): `limitAmount` (USD, required), `refreshPeriod`
    (`none` by default, as in Vercel), `mode` (`soft` by default) and `active` (true by default)."""

    limitAmount = AmountField()
    refreshPeriod = NameField(required=False, default=RefreshPeriod.NONE)
    mode = NameField(required=False, default=LimitMode.SOFT)
    active = StrictBooleanField(required=False, default=True)


class QuotaUpdateSerializer(serializers.Serializer):
    """PATCH body: any of `limitAmount`, `refreshPeriod`, `mode`, `active`, `archived`; only the
    fields sent change (Vercel: "send only what changes")."""

    limitAmount = AmountField(required=False)
    refreshPeriod = NameField(required=False)
    mode = NameField(required=False)
    active = StrictBooleanField(required=False)
    archived = StrictBooleanField(required=False)


# Reading ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Quota:
    """An API key's spend budget with what the key spent (USD) in the budget's current window."""

    api_key: ApiKey
    budget: SpendBudget
    current_spend_usd: Decimal


def quota_of(*, api_key: ApiKey, budget: SpendBudget, now: datetime | None = None) -> Quota:
    """`budget` of `api_key` with the key's cost in the window of its refresh period that
    contains `now` (aware UTC, default now), summed from the usage events."""
    since = window_start(budget.refresh_period, now or timezone.now())
    used = used_in_window(level=Level.API_KEY, entity_id=api_key.pk, since=since)
    return Quota(api_key=api_key, budget=budget, current_spend_usd=used.usd)


class QuotaSerializer(serializers.Serializer):
    """Vercel's quota shape: `quotaEntityId`, `apiKeyName`, `limitAmount` and `currentSpend`
    (USD, JSON numbers), `refreshPeriod` and `active`."""

    quotaEntityId = serializers.CharField(source="api_key.quota_entity_id")
    apiKeyName = serializers.CharField(source="api_key.name")
    limitAmount = serializers.DecimalField(source="budget.limit_usd", max_digits=14, decimal_places=4)
    currentSpend = serializers.DecimalField(source="current_spend_usd", max_digits=20, decimal_places=10)
    refreshPeriod = serializers.CharField(source="budget.refresh_period")
    active = serializers.BooleanField(source="budget.active")


def _budget_of(api_key: ApiKey) -> SpendBudget | None:
    try:
        return api_key.spend_budget
    except SpendBudget.DoesNotExist:
        return None


def _visible_api_key(user: User, key_id: int | None, *, not_found: str) -> ApiKey:
    """The API key with its gateway, group and budget, if `user` may view its resource group;
    else 404 with `not_found`, exactly as for a key that does not exist (SPEC §5)."""
    api_key = api_key_for(user, key_id) if key_id is not None else None
    if api_key is None:
        raise NotFound(not_found)
    return api_key


def _require_manage(user: User, api_key: ApiKey) -> None:
    require(user, Action.MANAGE_GATEWAYS, api_key.gateway.resource_group, MANAGE_DENIED)


def _json_object(request: Request) -> dict:
    if not isinstance(request.data, dict):
        raise field_error(None, "The body must be a JSON object")
    return request.data


# The view -----------------------------------------------------------------------------------


class ErrorSerializer(serializers.Serializer):
    """Every error of this API: a sentence, and for a 400 the field it is about."""

    error = serializers.CharField()
    field = serializers.CharField(required=False, allow_null=True)


class ArchivedSerializer(serializers.Serializer):
    quotaEntityId = serializers.CharField()  # noqa: N815 - Vercel's name
    archived = serializers.BooleanField()


_ENTITY = OpenApiParameter(
    "quotaEntityId", str, OpenApiParameter.QUERY, required=True, description="`api_key_id_<API key id>`"
)
_QUOTA_EXAMPLE = OpenApiExample(
    "A monthly budget",
    value={
        "quotaEntityId": "api_key_id_42",
        "apiKeyName": "support-bot key",
        "limitAmount": 10,
        "currentSpend": 1.04,
        "refreshPeriod": "monthly",
        "active": True,
    },
    response_only=True,
)
_ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="A field is wrong; `field` names it."),
    401: OpenApiResponse(ErrorSerializer, description="Unknown, revoked or expired API token."),
    403: OpenApiResponse(ErrorSerializer, description="Not signed in, or a read-only role on a write."),
    404: OpenApiResponse(ErrorSerializer, description="`Quota not found` / `API key not found`."),
}


@extend_schema_view(
    get=extend_schema(
        summary="Read an API key's spend budget",
        parameters=[_ENTITY],
        responses={200: QuotaSerializer, **_ERRORS},
        examples=[_QUOTA_EXAMPLE],
    ),
    post=extend_schema(
        summary="Give an API key a spend budget",
        request=QuotaCreateSerializer,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses={
            201: QuotaSerializer,
            409: OpenApiResponse(ErrorSerializer, description="A budget exists."),
            **_ERRORS,
        },
        examples=[
            OpenApiExample(
                "Ten dollars a month",
                value={"quotaEntityId": "api_key_id_42", "limitAmount": 10, "refreshPeriod": "monthly"},
                request_only=True,
            ),
            _QUOTA_EXAMPLE,
        ],
    ),
    patch=extend_schema(
        summary="Change, archive or restore an API key's spend budget",
        parameters=[_ENTITY],
        request=QuotaUpdateSerializer,
        responses={200: QuotaSerializer, **_ERRORS},
        examples=[
            OpenApiExample("Restore", value={"archived": False, "active": True, "limitAmount": 20}, request_only=True),
            _QUOTA_EXAMPLE,
        ],
    ),
    delete=extend_schema(
        summary="Remove (archive) an API key's spend budget",
        parameters=[_ENTITY],
        responses={200: ArchivedSerializer, **_ERRORS},
    ),
)
class QuotaView(APIView):
    """`/api/v1/quotas`: the spend budget of one API key, Vercel's Quotas API.

    Reading needs `Action.VIEW_SETTINGS` in the key's resource group (every role); POST, PATCH and DELETE
    need `Action.MANAGE_GATEWAYS` (owner, admin), else 403. A key in a group the user is not a
    member of is 404 like a missing one. Order of checks: `quotaEntityId` (400), key (404),
    role (403), body (400), budget state (404, 409), the service's rules (400).
    """

    parser_classes = [DecimalJSONParser]
    renderer_classes = [JSONRenderer]
    # The one handler (`core.api_errors`) renders Vercel's `{"error", "field"}` for this view,
    # naming the API's fields for the services' (`limit_usd` → `limitAmount`…).
    error_shape = "vercel"
    service_fields = _API_FIELDS

    def _api_key_from_query(self, request: Request) -> ApiKey:
        key_id = parse_quota_entity_id(request.query_params.get("quotaEntityId"))
        return _visible_api_key(request.user, key_id, not_found=QUOTA_NOT_FOUND)

    def get(self, request: Request) -> Response:
        """200 the quota; 404 `Quota not found` when the key has no budget or it was removed."""
        api_key = self._api_key_from_query(request)
        budget = _budget_of(api_key)
        if budget is None or budget.archived_at is not None:
            raise NotFound(QUOTA_NOT_FOUND)
        return Response(QuotaSerializer(quota_of(api_key=api_key, budget=budget)).data)

    @idempotent
    def post(self, request: Request) -> Response:
        """201 the new quota; 404 `API key not found`; 409 when a budget exists (archived too:
        Vercel restores with PATCH, and a POST returns 409 because the record still exists)."""
        body = _json_object(request)
        key_id = parse_quota_entity_id(body.get("quotaEntityId"))
        api_key = _visible_api_key(request.user, key_id, not_found=API_KEY_NOT_FOUND)
        _require_manage(request.user, api_key)
        serializer = QuotaCreateSerializer(data=body)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if _budget_of(api_key) is not None:
            # Vercel's answer, which says how to restore; `spend_budget_create` refuses it too
            # (`BudgetExists`, a 409 as well) when two creates race.
            raise Conflict(QUOTA_EXISTS)
        budget = spend_budget_create(
            api_key=api_key,
            limit_usd=data["limitAmount"],
            refresh_period=data["refreshPeriod"],
            mode=data["mode"],
            active=data["active"],
        )
        return Response(QuotaSerializer(quota_of(api_key=api_key, budget=budget)).data, status=status.HTTP_201_CREATED)

    def patch(self, request: Request) -> Response:
        """200 the changed quota, or `{"quotaEntityId", "archived": true}` when the change
        archives it. A removed (archived) budget is 404 unless the body restores it with
        `"archived": false` (Vercel: restore with PATCH `{"archived": false, "active": true,
        "limitAmount": …}`)."""
        entity_id = request.query_params.get("quotaEntityId")
        api_key = self._api_key_from_query(request)
        _require_manage(request.user, api_key)
        body = _json_object(request)
        if "quotaEntityId" in body and body["quotaEntityId"] != entity_id:
            raise field_error("quotaEntityId", "in the body must match the one in the query string")
        serializer = QuotaUpdateSerializer(data=body)
        serializer.is_valid(raise_exception=True)
        changes = serializer.validated_data
        budget = _budget_of(api_key)
        if budget is None or (budget.archived_at is not None and changes.get("archived") is not False):
            raise NotFound(QUOTA_NOT_FOUND)
        budget = spend_budget_update(budget=budget, **{_UPDATE_ARGUMENTS[name]: v for name, v in changes.items()})
        if budget.archived_at is not None:
            return Response({"quotaEntityId": api_key.quota_entity_id, "archived": True})
        return Response(QuotaSerializer(quota_of(api_key=api_key, budget=budget)).data)

    def delete(self, request: Request) -> Response:
        """200 `{"quotaEntityId", "archived": true}`: the budget is archived (kept, restorable)
        and the key is unlimited again; 404 when it has no budget or it was removed already."""
        api_key = self._api_key_from_query(request)
        _require_manage(request.user, api_key)
        budget = _budget_of(api_key)
        if budget is None or budget.archived_at is not None:
            raise NotFound(QUOTA_NOT_FOUND)
        spend_budget_archive(budget=budget)
        return Response({"quotaEntityId": api_key.quota_entity_id, "archived": True})
