"""The management API for API keys (SPEC §2, §5), under `/api/v1/`.

- `GET` and `POST /gateways/<id>/api-keys` (the `secret` only in the POST's 201).
- `GET /api-keys` (every key the user may see; `?gateway=`, `?resource_group=`, `?status=`, `?q=`,
  the console's API keys page's FilterSet, `keys.filters.ApiKeyFilterSet`), `GET` and `PATCH`
  (name, expiry) `/api-keys/<id>`, `POST /api-keys/<id>/rotate` and `/revoke`.

Creates and rotations accept an `Idempotency-Key` header (`core.idempotency`). Each key shows
its own live spend budget (`quotas`), read for a whole page in one query per refresh period.

Reading needs `Action.VIEW_SETTINGS` in the key's resource group, new keys `Action.CREATE_KEYS`;
revoking, rotating and editing need the owner or admin role, or the developer role for a key
one created (`core.permissions.can_change_api_key`). A key or gateway in a group the user is not
a member of is 404, exactly like one that does not exist; members without the right get 403.
"""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from core.api import ManagementPagination, ManagementView
from core.errors import NotFound, PermissionDenied, ValidationFailed
from core.idempotency import IDEMPOTENCY_KEY_PARAMETER, idempotent
from core.permissions import Action, User, can_change_api_key, gateways_for, require
from gateway.models import Gateway
from keys.filters import ApiKeyFilterSet
from keys.models import ApiKey, ApiKeyStatus
from keys.selectors import api_key_for, api_keys_for
from keys.services import api_key_create, api_key_revoke, api_key_rotate, api_key_update
from quotas.models import RefreshPeriod, SpendBudget
from quotas.selectors import spend_by_api_key

GATEWAY_NOT_FOUND = "Gateway not found."
API_KEY_NOT_FOUND = "API key not found."
CREATE_KEYS_DENIED = "Creating API keys needs the owner, admin or developer role in the gateway's resource group."
REVOKE_DENIED = (
    "Revoking this API key needs the owner or admin role in its resource group, "
    "or the developer role for a key you created."
)


# Serializers --------------------------------------------------------------------------------


class KeyBudgetSerializer(serializers.Serializer):
    """An API key's own spend budget as the API keys page shows it (`$1.04 / $10 spent · monthly`)."""

    limit_usd = serializers.DecimalField(max_digits=14, decimal_places=4, coerce_to_string=True)
    current_spend_usd = serializers.DecimalField(max_digits=20, decimal_places=10, coerce_to_string=True)
    refresh_period = serializers.ChoiceField(choices=RefreshPeriod.choices)
    active = serializers.BooleanField()


class ApiKeySerializer(serializers.ModelSerializer):
    """An API key without its secret: `status` is the effective one (`expired` once past
    `expires_at`); `spend_budget` is its own live (not archived) budget with the spend of the
    current window, or null for `Unlimited quota`. Pass `{"spent": {key id: Decimal}}` in the
    context to fill `current_spend_usd` without a query per key."""

    status = serializers.SerializerMethodField()
    quotaEntityId = serializers.CharField(source="quota_entity_id", read_only=True)  # noqa: N815 (Vercel's name)
    spend_budget = serializers.SerializerMethodField()

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "gateway",
            "name",
            "prefix",
            "status",
            "expires_at",
            "last_used_at",
            "created_at",
            "quotaEntityId",
            "spend_budget",
        ]
        read_only_fields = fields

    def get_status(self, api_key: ApiKey) -> str:
        """The effective status of the key."""
        return api_key.effective_status()

    @extend_schema_field(KeyBudgetSerializer(allow_null=True))
    def get_spend_budget(self, api_key: ApiKey) -> dict | None:
        """The key's live budget and its spend in the current window, or None."""
        budget = _live_budget(api_key)
        if budget is None:
            return None
        spent = self.context.get("spent")
        if spent is None or api_key.pk not in spent:
            spent = spend_by_api_key(budgets=[budget], now=timezone.now())
        return KeyBudgetSerializer(
            {
                "limit_usd": budget.limit_usd,
                "current_spend_usd": spent.get(api_key.pk, 0),
                "refresh_period": budget.refresh_period,
                "active": budget.active,
            }
        ).data


def _live_budget(api_key: ApiKey) -> SpendBudget | None:
    try:
        budget = api_key.spend_budget
    except SpendBudget.DoesNotExist:
        return None
    return budget if budget.archived_at is None else None


def api_keys_data(api_keys: list[ApiKey]) -> list:
    """The serialized keys, with every key's current spend read in one query per refresh period."""
    budgets = [b for b in (_live_budget(k) for k in api_keys) if b is not None]
    spent = spend_by_api_key(budgets=budgets, now=timezone.now()) if budgets else {}
    return list(ApiKeySerializer(api_keys, many=True, context={"spent": spent}).data)


class ApiKeyWithSecretSerializer(ApiKeySerializer):
    """An API key with its full `secret`, in the response that creates it and nowhere else."""

    secret = serializers.SerializerMethodField()

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "secret"]
        read_only_fields = fields

    def get_secret(self, api_key: ApiKey) -> str:
        """The secret passed in the context (`{"secret": …}`): it is stored nowhere."""
        return self.context["secret"]


class ApiKeyUpdateSerializer(serializers.Serializer):
    """`PATCH /api-keys/<id>` body: any of `name` and `expires_at` (ISO 8601 in the future, or
    null for unlimited validity)."""

    name = serializers.CharField(max_length=100, required=False)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)

    def validate_expires_at(self, value):
        """An expiry must lie in the future."""
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("must be in the future")
        return value


class ApiKeyCreateSerializer(serializers.Serializer):
    """`POST /gateways/<id>/api-keys` body: `name`, and `expires_at` (ISO 8601, in the future;
    absent or null means unlimited validity)."""

    name = serializers.CharField(max_length=100)
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)

    def validate_expires_at(self, value):
        """An expiry must lie in the future."""
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("must be in the future")
        return value


# Reading and checking -----------------------------------------------------------------------


def _visible_gateway(user: User, pk: int) -> Gateway:
    """The live gateway `pk` if `user` may view its resource group; else 404, as for a missing one."""
    gateway = gateways_for(user, Action.VIEW_SETTINGS).select_related("resource_group").filter(pk=pk).first()
    if gateway is None:
        raise NotFound(GATEWAY_NOT_FOUND)
    return gateway


def _visible_api_key(user: User, pk: int) -> ApiKey:
    """The API key `pk` of a live gateway `user` may view; else 404, as for a missing one."""
    api_key = api_key_for(user, pk)
    if api_key is None:
        raise NotFound(API_KEY_NOT_FOUND)
    return api_key


# Views --------------------------------------------------------------------------------------


class GatewayApiKeyListView(ManagementView):
    """`GET /api/v1/gateways/<id>/api-keys` (list, no secrets) and `POST` (create, secret once)."""

    serializer_class = ApiKeySerializer
    pagination_class = ManagementPagination

    @extend_schema(responses=ApiKeySerializer(many=True))
    def get(self, request: Request, pk: int) -> Response:
        """The gateway's API keys, newest first, a page at a time."""
        gateway = _visible_gateway(request.user, pk)
        keys = api_keys_for(request.user).filter(gateway=gateway).select_related("spend_budget")
        keys = keys.order_by("-created_at", "-id")
        page = self.paginate_queryset(keys)
        return self.get_paginated_response(api_keys_data(list(page or [])))

    @extend_schema(
        request=ApiKeyCreateSerializer,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses={
            201: ApiKeyWithSecretSerializer,
            400: OpenApiResponse(description="A field is invalid."),
            403: OpenApiResponse(description="The user is an auditor or viewer of the resource group."),
            404: OpenApiResponse(description="No such gateway, or not in one of the user's resource groups."),
        },
    )
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        """Create an API key on the gateway; its `secret` is in this response only."""
        gateway = _visible_gateway(request.user, pk)
        require(request.user, Action.CREATE_KEYS, gateway.resource_group, CREATE_KEYS_DENIED)
        body = ApiKeyCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        api_key, secret = api_key_create(
            gateway=gateway,
            name=body.validated_data["name"],
            expires_at=body.validated_data["expires_at"],
            created_by=request.user,
        )
        data = ApiKeyWithSecretSerializer(api_key, context={"secret": secret}).data
        return Response(data, status=status.HTTP_201_CREATED)


def _require_key_right(user, api_key: ApiKey) -> None:
    """Owners and admins may revoke or rotate any key of their groups; developers the keys they
    created (SPEC §1: developers manage their own keys).

    Raises:
        PermissionDenied: otherwise (403).
    """
    if not can_change_api_key(user, api_key):
        raise PermissionDenied(REVOKE_DENIED)


class ApiKeyRevokeView(ManagementView):
    """`POST /api/v1/api-keys/<id>/revoke` → 200 the revoked key (revoking twice changes nothing).

    Owners and admins may revoke any key of their groups; developers the keys they created."""

    serializer_class = ApiKeySerializer

    @extend_schema(request=None, responses=ApiKeySerializer)
    def post(self, request: Request, pk: int) -> Response:
        """Revoke the API key at once."""
        api_key = _visible_api_key(request.user, pk)
        _require_key_right(request.user, api_key)
        return Response(ApiKeySerializer(api_key_revoke(api_key=api_key)).data)


class ApiKeyRotateView(ManagementView):
    """`POST /api/v1/api-keys/<id>/rotate` → 200 the key with its new `secret` (once); the old
    secret stops working. The key keeps its id, budget and usage. Same rights as revoking."""

    serializer_class = ApiKeyWithSecretSerializer

    @extend_schema(
        request=None,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses={
            200: ApiKeyWithSecretSerializer,
            400: OpenApiResponse(description="The key is revoked."),
            403: OpenApiResponse(description=REVOKE_DENIED),
            404: OpenApiResponse(description="No such API key, or not in one of the user's resource groups."),
        },
    )
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        """Replace the key's secret."""
        api_key = _visible_api_key(request.user, pk)
        _require_key_right(request.user, api_key)
        api_key, secret = api_key_rotate(api_key=api_key)
        return Response(ApiKeyWithSecretSerializer(api_key, context={"secret": secret}).data)


_STATUS_FILTER = OpenApiParameter(
    "status",
    OpenApiTypes.STR,
    enum=[s.value for s in ApiKeyStatus],
    description="Only keys with this effective status (`expired` includes active keys past their expiry).",
)


class ApiKeyListView(ManagementView):
    """`GET /api/v1/api-keys`: every API key of the live gateways the user may see (Vercel's API
    keys page), newest first; `?gateway=<id>`, `?resource_group=<id>`, `?status=`, `?q=`: the
    console's API keys page's FilterSet (`keys.filters.ApiKeyFilterSet`)."""

    serializer_class = ApiKeySerializer
    pagination_class = ManagementPagination

    @extend_schema(
        parameters=[
            OpenApiParameter("gateway", OpenApiTypes.INT, description="Only the keys of this gateway."),
            OpenApiParameter("resource_group", OpenApiTypes.INT, description="Only the keys of this resource group."),
            _STATUS_FILTER,
            OpenApiParameter("q", OpenApiTypes.STR, description="A part of the name, or the start of the prefix."),
        ],
        responses={200: ApiKeySerializer(many=True), 400: OpenApiResponse(description="A filter is invalid.")},
    )
    def get(self, request: Request) -> Response:
        """List the API keys, a page at a time."""
        keys = api_keys_for(request.user).select_related("spend_budget")
        filters = ApiKeyFilterSet(request.query_params, queryset=keys)
        if not filters.is_valid():
            raise ValidationFailed(filters.errors)
        page = self.paginate_queryset(filters.qs.order_by("-created_at", "-id"))
        return self.get_paginated_response(api_keys_data(list(page or [])))


class ApiKeyDetailView(ManagementView):
    """`GET /api/v1/api-keys/<id>` (no secret) and `PATCH` (name, expiry; same rights as revoking)."""

    serializer_class = ApiKeySerializer

    @extend_schema(
        responses={200: ApiKeySerializer, 404: OpenApiResponse(description="No such API key, or not visible.")}
    )
    def get(self, request: Request, pk: int) -> Response:
        """The API key, without its secret."""
        api_key = _visible_api_key(request.user, pk)
        return Response(api_keys_data([api_key])[0])

    @extend_schema(
        request=ApiKeyUpdateSerializer,
        responses={
            200: ApiKeySerializer,
            400: OpenApiResponse(description="A field is invalid (e.g. `expires_at` in the past)."),
            403: OpenApiResponse(description=REVOKE_DENIED),
            404: OpenApiResponse(description="No such API key, or not visible."),
        },
        examples=[
            OpenApiExample(
                "Rename and extend", request_only=True, value={"name": "ci", "expires_at": "2027-06-30T00:00:00Z"}
            ),
            OpenApiExample("Never expire", request_only=True, value={"expires_at": None}),
        ],
    )
    def patch(self, request: Request, pk: int) -> Response:
        """Rename the key and/or change its expiry; effective from the next request."""
        api_key = _visible_api_key(request.user, pk)
        _require_key_right(request.user, api_key)
        body = ApiKeyUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        api_key = api_key_update(
            api_key=api_key,
            name=data.get("name"),
            expires_at=data.get("expires_at"),
            clear_expiry="expires_at" in data and data["expires_at"] is None,
        )
        return Response(api_keys_data([api_key])[0])
