"""The management API for gateways (SPEC §2, §5), under `/api/v1/`.

- `GET /gateways` (paginated) and `POST /gateways` → 201 the gateway and its first API key with
  its `secret`, shown this once.
- `GET`, `PATCH` (name, status `enabled`/`disabled`, `all_models`, `models`) and `DELETE` (soft:
  `deleted_at` is set, its keys stop working) `/gateways/<id>`.
- `POST /gateways/<id>/duplicate` → 201 the copy (same configuration and limits, a new first
  key with its `secret`, no usage).
- The API keys' endpoints (`/gateways/<id>/api-keys`, `/api-keys…`) are `keys.api`'s.

Creates and rotations accept an `Idempotency-Key` header (`core.idempotency`).

A gateway's models (SPEC §1) are explicit: `all_models: true` serves every enabled model of the
catalog; otherwise exactly `models` (names, sorted), and an empty list serves none: no gateway
widens by itself.

Roles come from `core.permissions`, and every read goes through `restrict(user, action)`:
reading needs `Action.VIEW_SETTINGS` in the gateway's resource group, gateway writes
`Action.MANAGE_GATEWAYS`, new keys `Action.CREATE_KEYS`. A gateway or key in a group the user is
not a member of is 404, exactly like one that does not exist (never 403); members without the
right get 403. The services raise `core.errors`' family, which the one exception handler
(`core.api_errors`) renders: a 400 is DRF's `{"<field>": ["<message>"]}`, with the services'
field names mapped to the API's (`service_fields`).
"""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from core.api import ManagementPagination, ManagementView
from core.errors import NotFound, ValidationFailed
from core.idempotency import IDEMPOTENCY_KEY_PARAMETER, idempotent
from core.permissions import Action, User, gateways_for, groups_for, require
from gateway.models import Gateway, GatewayStatus, Model
from gateway.services import gateway_delete, gateway_update
from gateway.setup import gateway_create, gateway_duplicate
from keys.api import ApiKeyWithSecretSerializer
from keys.expiry import EXPIRES_IN_CHOICES, expires_at_for
from quotas.models import RefreshPeriod

GATEWAY_NOT_FOUND = "Gateway not found."
MANAGE_DENIED = "Changing gateways needs the owner or admin role in the gateway's resource group."
CREATE_KEYS_DENIED = "Creating API keys needs the owner, admin or developer role in the gateway's resource group."
REVOKE_DENIED = (
    "Revoking this API key needs the owner or admin role in its resource group, "
    "or the developer role for a key you created."
)

# Service (model) field names → the API's names, so a service's ValidationError names the API field.
_API_FIELDS = {
    "limit_usd": "spend_budget_usd",
    "refresh_period": "spend_budget_refresh_period",
    "limit_tokens": "token_quota",
    "tokens_per_minute": "tokens_per_minute",
}


# Serializers --------------------------------------------------------------------------------


class GatewaySerializer(serializers.ModelSerializer):
    """A gateway as the API shows it: `id`, `name`, `resource_group` (id), `status`, `created_at`,
    and its models: `all_models` (true: every enabled model of the catalog) and `models` (the
    names of its explicit list, sorted; empty with `all_models` false means it serves none)."""

    models = serializers.SerializerMethodField()

    class Meta:
        model = Gateway
        fields = ["id", "name", "resource_group", "status", "created_at", "all_models", "models"]
        read_only_fields = fields

    def get_models(self, gateway: Gateway) -> list[str]:
        """The names of the gateway's explicit model list, sorted (prefetched by the list)."""
        return sorted(model.name for model in gateway.allowed_models.all())


class GatewayCreatedSerializer(GatewaySerializer):
    """The 201 of `POST /gateways`: the gateway and its first API key, with the key's secret."""

    api_key = serializers.SerializerMethodField()

    class Meta(GatewaySerializer.Meta):
        fields = [*GatewaySerializer.Meta.fields, "api_key"]
        read_only_fields = fields

    @extend_schema_field(ApiKeyWithSecretSerializer)
    def get_api_key(self, gateway: Gateway) -> dict:
        """The first API key with its secret, both passed in the context (`api_key`, `secret`)."""
        return ApiKeyWithSecretSerializer(self.context["api_key"], context=self.context).data


class GatewayCreateSerializer(serializers.Serializer):
    """`POST /gateways` body (Zenlayer's Create AI Gateway dialog).

    `token_quota` (tokens), `spend_budget_usd` (at least 1 USD) and `tokens_per_minute` are
    optional and hold for all the gateway's keys; absent or null means unlimited. `expires_in`
    (`7d`, `30d`, `60d`, `90d`, `never`; default `never`) sets the first API key's expiry.
    """

    name = serializers.CharField(max_length=100)
    resource_group = serializers.IntegerField(min_value=1)
    token_quota = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    expires_in = serializers.ChoiceField(choices=list(EXPIRES_IN_CHOICES), default="never")
    spend_budget_usd = serializers.DecimalField(
        max_digits=14, decimal_places=4, min_value=1, required=False, allow_null=True
    )
    spend_budget_refresh_period = serializers.ChoiceField(choices=RefreshPeriod.choices, default=RefreshPeriod.NONE)
    tokens_per_minute = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    all_models = serializers.BooleanField(
        required=False,
        help_text="Serve every enabled model of the catalog. Default: true when `models` is absent, else false.",
    )
    models = serializers.ListField(
        child=serializers.CharField(max_length=200),
        required=False,
        max_length=1000,
        help_text="The names of the models the gateway serves (from the catalog, `GET /models`).",
    )

    def validate(self, attrs: dict) -> dict:
        """`models` and `all_models: true` contradict each other."""
        return _models_consistent(attrs)


def _models_consistent(attrs: dict) -> dict:
    if attrs.get("all_models") and attrs.get("models"):
        raise serializers.ValidationError({"models": ["Leave models out when all_models is true."]})
    return attrs


class GatewayUpdateSerializer(serializers.Serializer):
    """`PATCH /gateways/<id>` body: any of `name`, `status` (`enabled` or `disabled`),
    `all_models` and `models` (names from the catalog). `models` alone means the list, and
    `all_models: false` alone keeps the list the gateway has (none when it served all models)."""

    name = serializers.CharField(max_length=100, required=False)
    # All of GatewayStatus's choices, so the OpenAPI schema has one status enum; the service
    # (`gateway_update`) refuses `provisioning`, aigw's own state.
    status = serializers.ChoiceField(choices=GatewayStatus.choices, required=False)
    all_models = serializers.BooleanField(required=False, help_text="Serve every enabled model of the catalog.")
    models = serializers.ListField(
        child=serializers.CharField(max_length=200),
        required=False,
        max_length=1000,
        help_text="The names of the models the gateway serves; an empty list serves none.",
    )

    def validate(self, attrs: dict) -> dict:
        """`models` and `all_models: true` contradict each other."""
        return _models_consistent(attrs)


class GatewayDuplicateSerializer(serializers.Serializer):
    """`POST /gateways/<id>/duplicate` body: the copy's `name` (default `<name> (copy)`)."""

    name = serializers.CharField(max_length=100, required=False)


# Reading and checking -----------------------------------------------------------------------


def _gateways(user: User) -> QuerySet[Gateway]:
    """The live gateways `user` may view, with their resource group and model list."""
    return (
        gateways_for(user, Action.VIEW_SETTINGS)
        .select_related("resource_group")
        .prefetch_related(Prefetch("allowed_models", queryset=Model.objects.restrict(user).order_by("name")))
    )


def _visible_gateway(user: User, pk: int) -> Gateway:
    """The live gateway `pk` if `user` may view its resource group; else 404, as for a missing one."""
    gateway = _gateways(user).filter(pk=pk).first()
    if gateway is None:
        raise NotFound(GATEWAY_NOT_FOUND)
    return gateway


def catalog_models(user: User, names: list[str]) -> list[Model]:
    """The catalog's models named `names` (duplicates once).

    Raises:
        ValidationFailed: `{"models": ...}` naming every name the catalog does not have.
    """
    wanted = sorted(set(names))
    found = list(Model.objects.restrict(user).filter(name__in=wanted))
    unknown = sorted(set(wanted) - {model.name for model in found})
    if unknown:
        raise ValidationFailed({"models": f"Not in the model catalog: {', '.join(unknown)}."})
    return found


def _models_arguments(user: User, data: dict, gateway: Gateway | None = None) -> dict:
    """`all_models` and the model list for `gateway_create`/`gateway_update` from a body.

    `all_models: false` without `models` keeps the gateway's list (never widens, never empties
    it behind the admin's back); `models` without `all_models` is the explicit list."""
    if "all_models" not in data and "models" not in data:
        return {}
    if "models" in data:
        chosen = catalog_models(user, data["models"])
    elif gateway is not None:
        chosen = list(gateway.allowed_models.all())
    else:
        chosen = []
    return {"all_models": data.get("all_models", False), "models": chosen}


# Views --------------------------------------------------------------------------------------


class _ManagementView(ManagementView):
    """A gateways or API keys view: a service's 400 names the API's fields."""

    service_fields = _API_FIELDS


class GatewayListView(_ManagementView):
    """`GET /api/v1/gateways` (the live gateways the user may view) and `POST` (create one)."""

    serializer_class = GatewaySerializer
    pagination_class = ManagementPagination

    def get_queryset(self):
        """The live gateways in the groups where the user may view, with their models."""
        return _gateways(self.request.user).order_by("name", "id")

    @extend_schema(responses=GatewaySerializer(many=True))
    def get(self, request: Request) -> Response:
        """List the gateways the user may view, a page at a time."""
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(GatewaySerializer(page, many=True).data)

    @extend_schema(
        request=GatewayCreateSerializer,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses={
            201: GatewayCreatedSerializer,
            400: OpenApiResponse(description='A field is invalid: `{"<field>": ["<message>"]}`.'),
            403: OpenApiResponse(description="The user is not an owner or admin of the resource group."),
        },
        examples=[
            OpenApiExample(
                "A gateway with a monthly budget of $50",
                request_only=True,
                value={
                    "name": "support-bot",
                    "resource_group": 1,
                    "expires_in": "90d",
                    "spend_budget_usd": "50",
                    "spend_budget_refresh_period": "monthly",
                    "models": ["gpt-4o-mini"],
                },
            )
        ],
    )
    @idempotent
    def post(self, request: Request) -> Response:
        """Create a gateway with its first API key; the key's `secret` is in this response only."""
        body = GatewayCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        group = groups_for(request.user, Action.VIEW_SETTINGS).filter(pk=data["resource_group"]).first()
        if group is None:
            raise ValidationFailed({"resource_group": "No such resource group."})
        require(request.user, Action.MANAGE_GATEWAYS, group, MANAGE_DENIED)
        models = _models_arguments(request.user, data)
        gateway, api_key, secret = gateway_create(
            resource_group=group,
            name=data["name"],
            created_by=request.user,
            token_quota=data.get("token_quota"),
            expires_at=expires_at_for(data["expires_in"]),
            spend_budget_usd=data.get("spend_budget_usd"),
            spend_budget_refresh_period=data["spend_budget_refresh_period"],
            tokens_per_minute=data.get("tokens_per_minute"),
            all_models=models.get("all_models"),
            allowed_models=models.get("models"),
        )
        data = GatewayCreatedSerializer(gateway, context={"api_key": api_key, "secret": secret}).data
        return Response(data, status=status.HTTP_201_CREATED)


class GatewayDetailView(_ManagementView):
    """`GET`, `PATCH` and `DELETE /api/v1/gateways/<id>`."""

    serializer_class = GatewaySerializer

    def get(self, request: Request, pk: int) -> Response:
        """The gateway, if the user may view it."""
        return Response(GatewaySerializer(_visible_gateway(request.user, pk)).data)

    @extend_schema(
        request=GatewayUpdateSerializer,
        responses=GatewaySerializer,
        examples=[
            OpenApiExample("Two models only", request_only=True, value={"models": ["gpt-4o-mini", "mock/echo"]}),
            OpenApiExample("Every model", request_only=True, value={"all_models": True}),
        ],
    )
    def patch(self, request: Request, pk: int) -> Response:
        """Rename the gateway, set its status to `enabled` or `disabled`, and/or set its models."""
        gateway = _visible_gateway(request.user, pk)
        require(request.user, Action.MANAGE_GATEWAYS, gateway.resource_group, MANAGE_DENIED)
        body = GatewayUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        gateway_update(
            gateway=gateway,
            name=data.get("name"),
            status=data.get("status"),
            **_models_arguments(request.user, data, gateway),
        )
        return Response(GatewaySerializer(_visible_gateway(request.user, pk)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        """Delete the gateway (soft): all its keys stop working at once; usage stays readable."""
        gateway = _visible_gateway(request.user, pk)
        require(request.user, Action.MANAGE_GATEWAYS, gateway.resource_group, MANAGE_DENIED)
        gateway_delete(gateway=gateway)
        return Response(status=status.HTTP_204_NO_CONTENT)


class GatewayDuplicateView(_ManagementView):
    """`POST /api/v1/gateways/<id>/duplicate` → 201 the copy with its first API key and `secret`.

    SPEC §2 Duplicate: same configuration (resource group, allowed models, the gateway's token
    quota, spend budget and rate limit), name `<name> (copy)` or as given, a new key, no usage.
    Needs the owner or admin role in the gateway's resource group."""

    serializer_class = GatewayCreatedSerializer

    @extend_schema(
        request=GatewayDuplicateSerializer,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses={
            201: GatewayCreatedSerializer,
            400: OpenApiResponse(description="The name is taken in the resource group."),
            403: OpenApiResponse(description=MANAGE_DENIED),
            404: OpenApiResponse(description="No such gateway, or not in one of the user's resource groups."),
        },
    )
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        """Duplicate the gateway."""
        gateway = _visible_gateway(request.user, pk)
        require(request.user, Action.MANAGE_GATEWAYS, gateway.resource_group, MANAGE_DENIED)
        body = GatewayDuplicateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        copy, api_key, secret = gateway_duplicate(
            gateway=gateway, name=body.validated_data.get("name"), created_by=request.user
        )
        copy = _visible_gateway(request.user, copy.pk)
        data = GatewayCreatedSerializer(copy, context={"api_key": api_key, "secret": secret}).data
        return Response(data, status=status.HTTP_201_CREATED)
