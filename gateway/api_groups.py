"""The management API for resource groups, members, providers and models (SPEC §1, §5), under
`/api/v1/`.

- `GET /resource-groups` (the groups the user is a member of; all for superusers) and `POST`
  (any signed-in user may create one and becomes its owner); `GET`, `PATCH` (rename, owner) and
  `DELETE` (owner; only a group without gateways) `/resource-groups/<id>`.
- `GET /resource-groups/<id>/members` (any member), `POST` (owner: add an existing user by
  username or email with a role), `PATCH` and `DELETE /resource-groups/<id>/members/<user id>`
  (owner). A group always keeps an owner: demoting or removing the last one is 409.
- `GET /providers`, `GET /providers/<id>` (any signed-in user; the credential is never shown,
  only `credential_set`), `POST`, `PATCH`, `DELETE` (platform admins only, SPEC §1: providers
  and their credentials serve the whole instance; 403 for anyone else). Changing `base_url`
  clears the stored credential unless a new one comes in the same request. A provider that
  models route to is 409 on delete.
- `GET /models`, `GET /models/<id>` and the writes, with the same rules. Prices are USD per
  million tokens as decimal strings; a model created without prices takes the genai-prices
  defaults for its upstream model, and setting any price makes the price source `custom`. A
  model that live gateways list is 409 on delete, naming them.

Reads go through `restrict(user, action)` and rules live in `gateway.services`, which raise the
`core.errors` family; one handler renders them. A group the user is not a member of is 404
like a missing one.
"""

from __future__ import annotations

from decimal import Decimal

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from core.api import ManagementPagination, ManagementView
from core.idempotency import IDEMPOTENCY_KEY_PARAMETER, idempotent
from core.permissions import Action, policy_for, require
from gateway.models import Membership, Model, Provider, ProviderKind, ResourceGroup, Role
from gateway.pricing import Prices
from gateway.services import (
    membership_add,
    membership_remove,
    membership_set,
    model_create,
    model_delete,
    model_update,
    provider_create,
    provider_delete,
    provider_update,
    resource_group_create,
    resource_group_delete,
    resource_group_update,
)

GROUP_NOT_FOUND = "Resource group not found."
MEMBER_NOT_FOUND = "Member not found."
PROVIDER_NOT_FOUND = "Provider not found."
MODEL_NOT_FOUND = "Model not found."


# Resource groups ----------------------------------------------------------------------------


class ResourceGroupSerializer(serializers.ModelSerializer):
    """A resource group: `id`, `name`, `created_at`, and `role`, the requesting user's role in it."""

    role = serializers.SerializerMethodField()

    class Meta:
        model = ResourceGroup
        fields = ["id", "name", "created_at", "role"]
        read_only_fields = fields

    def get_role(self, group: ResourceGroup) -> str | None:
        """The user's role (`owner` for superusers; null for a platform admin who is no member)."""
        return policy_for(self.context["request"].user).role_in(group.pk)


class ResourceGroupWriteSerializer(serializers.Serializer):
    """`POST /resource-groups` and `PATCH /resource-groups/<id>` body: `name` (unique)."""

    name = serializers.CharField(max_length=100)


def _visible_group(user, pk: int) -> ResourceGroup:
    group = ResourceGroup.objects.restrict(user, Action.VIEW_SETTINGS).filter(pk=pk).first()
    if group is None:
        raise exceptions.NotFound(GROUP_NOT_FOUND)
    return group


class ResourceGroupListView(ManagementView):
    """`GET /api/v1/resource-groups` and `POST` (create; the creator becomes its owner)."""

    serializer_class = ResourceGroupSerializer
    pagination_class = ManagementPagination

    @extend_schema(responses=ResourceGroupSerializer(many=True))
    def get(self, request: Request) -> Response:
        """The groups the user is a member of (every group for superusers), by name."""
        groups = ResourceGroup.objects.restrict(request.user, Action.VIEW_SETTINGS).order_by("name", "id")
        page = self.paginate_queryset(groups)
        data = ResourceGroupSerializer(page, many=True, context={"request": request}).data
        return self.get_paginated_response(data)

    @extend_schema(
        request=ResourceGroupWriteSerializer,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses={201: ResourceGroupSerializer, 400: OpenApiResponse(description="The name is taken or invalid.")},
        examples=[OpenApiExample("A team's group", request_only=True, value={"name": "support-team"})],
    )
    @idempotent
    def post(self, request: Request) -> Response:
        """Create a resource group; the user becomes its owner."""
        body = ResourceGroupWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        group = resource_group_create(name=body.validated_data["name"], owner=request.user)
        return Response(ResourceGroupSerializer(group, context={"request": request}).data, status=201)


class ResourceGroupDetailView(ManagementView):
    """`GET`, `PATCH` (rename) and `DELETE /api/v1/resource-groups/<id>`."""

    serializer_class = ResourceGroupSerializer

    def get(self, request: Request, pk: int) -> Response:
        """The group, if the user is a member."""
        group = _visible_group(request.user, pk)
        return Response(ResourceGroupSerializer(group, context={"request": request}).data)

    @extend_schema(request=ResourceGroupWriteSerializer, responses=ResourceGroupSerializer)
    def patch(self, request: Request, pk: int) -> Response:
        """Rename the group (owner)."""
        group = _visible_group(request.user, pk)
        require(request.user, Action.MANAGE_MEMBERS, group)
        body = ResourceGroupWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        group = resource_group_update(resource_group=group, name=body.validated_data["name"])
        return Response(ResourceGroupSerializer(group, context={"request": request}).data)

    @extend_schema(responses={204: None, 409: OpenApiResponse(description="The group still holds gateways.")})
    def delete(self, request: Request, pk: int) -> Response:
        """Delete the group (owner); a group that holds gateways, even deleted ones, is 409."""
        group = _visible_group(request.user, pk)
        require(request.user, Action.MANAGE_MEMBERS, group)
        resource_group_delete(resource_group=group)
        return Response(status=status.HTTP_204_NO_CONTENT)


# Members ------------------------------------------------------------------------------------


class MemberSerializer(serializers.ModelSerializer):
    """A member of a group: `user_id`, `username`, `email`, `role`, `created_at` (joined)."""

    user_id = serializers.IntegerField(source="user.pk", read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)
    email = serializers.CharField(source="user.email", read_only=True)

    class Meta:
        model = Membership
        fields = ["user_id", "username", "email", "role", "created_at"]
        read_only_fields = fields


class MemberAddSerializer(serializers.Serializer):
    """`POST /resource-groups/<id>/members` body: `user` (an existing user's username or email)
    and `role`."""

    user = serializers.CharField(max_length=254)
    role = serializers.ChoiceField(choices=Role.choices)


class MemberRoleSerializer(serializers.Serializer):
    """`PATCH /resource-groups/<id>/members/<user id>` body: the new `role`."""

    role = serializers.ChoiceField(choices=Role.choices)


class MemberListView(ManagementView):
    """`GET /api/v1/resource-groups/<id>/members` and `POST` (add a member, owner)."""

    serializer_class = MemberSerializer
    pagination_class = ManagementPagination

    @extend_schema(responses=MemberSerializer(many=True))
    def get(self, request: Request, pk: int) -> Response:
        """The group's members and roles, by username."""
        group = _visible_group(request.user, pk)
        members = group.memberships.select_related("user").order_by("user__username", "pk")
        page = self.paginate_queryset(members)
        return self.get_paginated_response(MemberSerializer(page, many=True).data)

    @extend_schema(
        request=MemberAddSerializer,
        responses={
            201: MemberSerializer,
            400: OpenApiResponse(description="No such user, an unknown role, or the user is a member already."),
        },
        examples=[
            OpenApiExample("Invite an auditor", request_only=True, value={"user": "ana@example.com", "role": "auditor"})
        ],
    )
    def post(self, request: Request, pk: int) -> Response:
        """Add an existing user with a role (owner); change a member's role with PATCH."""
        group = _visible_group(request.user, pk)
        require(request.user, Action.MANAGE_MEMBERS, group)
        body = MemberAddSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        membership = membership_add(
            resource_group=group, user=body.validated_data["user"], role=body.validated_data["role"]
        )
        return Response(MemberSerializer(membership).data, status=status.HTTP_201_CREATED)


class MemberDetailView(ManagementView):
    """`GET`, `PATCH` (role) and `DELETE /api/v1/resource-groups/<id>/members/<user id>`."""

    serializer_class = MemberSerializer

    def _membership(self, request: Request, pk: int, user_id: int) -> Membership:
        group = _visible_group(request.user, pk)
        membership = group.memberships.select_related("user").filter(user_id=user_id).first()
        if membership is None:
            raise exceptions.NotFound(MEMBER_NOT_FOUND)
        return membership

    def get(self, request: Request, pk: int, user_id: int) -> Response:
        """One member of the group."""
        return Response(MemberSerializer(self._membership(request, pk, user_id)).data)

    @extend_schema(
        request=MemberRoleSerializer,
        responses={
            200: MemberSerializer,
            409: OpenApiResponse(description="It would leave the group without an owner."),
        },
    )
    def patch(self, request: Request, pk: int, user_id: int) -> Response:
        """Change the member's role (owner); demoting the last owner is 409."""
        membership = self._membership(request, pk, user_id)
        require(request.user, Action.MANAGE_MEMBERS, membership.resource_group)
        body = MemberRoleSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        membership = membership_set(
            resource_group=membership.resource_group, user=membership.user, role=body.validated_data["role"]
        )
        return Response(MemberSerializer(membership).data)

    @extend_schema(
        responses={204: None, 409: OpenApiResponse(description="It would leave the group without an owner.")}
    )
    def delete(self, request: Request, pk: int, user_id: int) -> Response:
        """Remove the member (owner); removing the last owner is 409."""
        membership = self._membership(request, pk, user_id)
        require(request.user, Action.MANAGE_MEMBERS, membership.resource_group)
        membership_remove(resource_group=membership.resource_group, user=membership.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# Providers and models -----------------------------------------------------------------------


class ProviderSerializer(serializers.ModelSerializer):
    """A provider without its credential: `credential_set` says whether one is stored."""

    credential_set = serializers.SerializerMethodField()
    base_url = serializers.CharField(read_only=True, help_text="e.g. https://api.openai.com/v1; empty for `mock`.")

    class Meta:
        model = Provider
        fields = ["id", "name", "kind", "base_url", "settings", "credential_set", "created_at"]
        read_only_fields = fields

    def get_credential_set(self, provider: Provider) -> bool:
        """True when an (encrypted) credential is stored."""
        return bool(provider.credential_encrypted)


class ProviderWriteSerializer(serializers.Serializer):
    """`POST /providers` and `PATCH /providers/<id>` body. `credential` is write-only: it is
    encrypted at rest and never returned; on PATCH, absent keeps it and "" removes it, and a
    changed `base_url` without a new `credential` removes it too (it must be typed again)."""

    name = serializers.CharField(max_length=100)
    kind = serializers.ChoiceField(choices=ProviderKind.choices)
    base_url = serializers.URLField(required=False, allow_blank=True, default="", max_length=200)
    credential = serializers.CharField(required=False, allow_blank=True, write_only=True, trim_whitespace=True)
    settings = serializers.DictField(required=False, default=dict)


def _visible_provider(user, pk: int) -> Provider:
    provider = Provider.objects.restrict(user, Action.VIEW_SETTINGS).filter(pk=pk).first()
    if provider is None:
        raise exceptions.NotFound(PROVIDER_NOT_FOUND)
    return provider


class ProviderListView(ManagementView):
    """`GET /api/v1/providers` and `POST` (add a provider)."""

    serializer_class = ProviderSerializer
    pagination_class = ManagementPagination

    @extend_schema(responses=ProviderSerializer(many=True))
    def get(self, request: Request) -> Response:
        """Every provider (credentials never shown)."""
        providers = Provider.objects.restrict(request.user, Action.VIEW_SETTINGS).order_by("name", "pk")
        page = self.paginate_queryset(providers)
        return self.get_paginated_response(ProviderSerializer(page, many=True).data)

    @extend_schema(
        request=ProviderWriteSerializer,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses={201: ProviderSerializer},
        examples=[
            OpenApiExample(
                "OpenAI",
                request_only=True,
                value={
                    "name": "openai",
                    "kind": "openai",
                    "base_url": "https://api.openai.com/v1",
                    "credential": "sk-…",
                },
            )
        ],
    )
    @idempotent
    def post(self, request: Request) -> Response:
        """Add a provider (platform admins); its credential is encrypted before it is stored."""
        require(request.user, Action.MANAGE_PROVIDERS)
        body = ProviderWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        provider = provider_create(
            name=data["name"],
            kind=data["kind"],
            base_url=data["base_url"],
            credential=data.get("credential", ""),
            settings=data["settings"],
            actor=request.user,
        )
        return Response(ProviderSerializer(provider).data, status=status.HTTP_201_CREATED)


class ProviderDetailView(ManagementView):
    """`GET`, `PATCH` and `DELETE /api/v1/providers/<id>`."""

    serializer_class = ProviderSerializer

    def get(self, request: Request, pk: int) -> Response:
        """One provider (no credential)."""
        return Response(ProviderSerializer(_visible_provider(request.user, pk)).data)

    @extend_schema(request=ProviderWriteSerializer, responses=ProviderSerializer)
    def patch(self, request: Request, pk: int) -> Response:
        """Change any of `name`, `base_url`, `credential`, `settings` (platform admins; the kind
        stays). A new `base_url` without a new `credential` removes the stored credential."""
        provider = _visible_provider(request.user, pk)
        require(request.user, Action.MANAGE_PROVIDERS)
        body = ProviderWriteSerializer(provider, data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        provider = provider_update(
            provider=provider,
            name=data.get("name"),
            kind=data.get("kind"),
            base_url=data.get("base_url"),
            credential=data.get("credential"),
            settings=data.get("settings"),
            actor=request.user,
        )
        return Response(ProviderSerializer(provider).data)

    @extend_schema(responses={204: None, 409: OpenApiResponse(description="Models route to this provider.")})
    def delete(self, request: Request, pk: int) -> Response:
        """Delete a provider no model routes to (platform admins)."""
        provider = _visible_provider(request.user, pk)
        require(request.user, Action.MANAGE_PROVIDERS)
        provider_delete(provider=provider, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _price_field(coerce_to_string: bool | None = None) -> serializers.DecimalField:
    """A price in USD per million tokens: a decimal string, at least 0, null for no price."""
    return serializers.DecimalField(
        max_digits=14,
        decimal_places=6,
        min_value=Decimal(0),
        allow_null=True,
        required=False,
        coerce_to_string=coerce_to_string,
    )


class ModelSerializer(serializers.ModelSerializer):
    """A model with its provider (id) and prices in USD per million tokens, as decimal strings
    (null: no price; a null cached-input or cache-write price bills at the input price)."""

    input_price_per_mtok = _price_field(coerce_to_string=True)
    cached_input_price_per_mtok = _price_field(coerce_to_string=True)
    cache_write_price_per_mtok = _price_field(coerce_to_string=True)
    output_price_per_mtok = _price_field(coerce_to_string=True)

    class Meta:
        model = Model
        fields = [
            "id",
            "name",
            "provider",
            "upstream_model",
            "input_price_per_mtok",
            "cached_input_price_per_mtok",
            "cache_write_price_per_mtok",
            "output_price_per_mtok",
            "price_source",
            "max_output_tokens",
            "enabled",
            "created_at",
        ]
        read_only_fields = fields


class ModelWriteSerializer(serializers.Serializer):
    """`POST /models` and `PATCH /models/<id>` body. Without any price on POST, the prices come
    from the genai-prices library for `upstream_model` (default: `name`)."""

    name = serializers.CharField(max_length=200)
    provider = serializers.PrimaryKeyRelatedField(queryset=Provider.objects.none())
    upstream_model = serializers.CharField(max_length=200, required=False, allow_blank=False)
    input_price_per_mtok = _price_field()
    cached_input_price_per_mtok = _price_field()
    cache_write_price_per_mtok = _price_field()
    output_price_per_mtok = _price_field()
    max_output_tokens = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    enabled = serializers.BooleanField(required=False)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        request = self.context.get("request")  # absent while drf-spectacular draws the schema
        if request is not None:
            field = self.fields["provider"]
            field.queryset = Provider.objects.restrict(request.user, Action.MANAGE_PROVIDERS)  # type: ignore[attr-defined]


_PRICE_FIELDS = (
    "input_price_per_mtok",
    "cached_input_price_per_mtok",
    "cache_write_price_per_mtok",
    "output_price_per_mtok",
)


def _visible_model(user, pk: int) -> Model:
    model = Model.objects.restrict(user, Action.VIEW_SETTINGS).filter(pk=pk).first()
    if model is None:
        raise exceptions.NotFound(MODEL_NOT_FOUND)
    return model


class ModelListView(ManagementView):
    """`GET /api/v1/models` (`?provider=<id>`) and `POST` (add a model)."""

    serializer_class = ModelSerializer
    pagination_class = ManagementPagination

    @extend_schema(responses=ModelSerializer(many=True))
    def get(self, request: Request) -> Response:
        """Every model with its prices, by name."""
        models = Model.objects.restrict(request.user, Action.VIEW_SETTINGS).order_by("name", "pk")
        page = self.paginate_queryset(models)
        return self.get_paginated_response(ModelSerializer(page, many=True).data)

    @extend_schema(
        request=ModelWriteSerializer,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses={201: ModelSerializer},
        examples=[
            OpenApiExample("Priced by genai-prices", request_only=True, value={"name": "gpt-4o-mini", "provider": 2}),
            OpenApiExample(
                "Custom prices",
                request_only=True,
                value={
                    "name": "local-llama",
                    "provider": 3,
                    "input_price_per_mtok": "0.10",
                    "output_price_per_mtok": "0.30",
                },
            ),
        ],
    )
    @idempotent
    def post(self, request: Request) -> Response:
        """Add a model routed to a provider (platform admins)."""
        require(request.user, Action.MANAGE_PROVIDERS)
        body = ModelWriteSerializer(data=request.data, context={"request": request})
        body.is_valid(raise_exception=True)
        data = body.validated_data
        given = {field: data.get(field) for field in _PRICE_FIELDS if field in data}
        prices = None
        if given:
            prices = Prices(
                input=given.get("input_price_per_mtok"),
                cached_input=given.get("cached_input_price_per_mtok"),
                cache_write=given.get("cache_write_price_per_mtok"),
                output=given.get("output_price_per_mtok"),
            )
        model = model_create(
            name=data["name"],
            provider=data["provider"],
            upstream_model=data.get("upstream_model"),
            prices=prices,
            max_output_tokens=data.get("max_output_tokens"),
            enabled=data.get("enabled", True),
            actor=request.user,
        )
        return Response(ModelSerializer(model).data, status=status.HTTP_201_CREATED)


class ModelDetailView(ManagementView):
    """`GET`, `PATCH` and `DELETE /api/v1/models/<id>`."""

    serializer_class = ModelSerializer

    def get(self, request: Request, pk: int) -> Response:
        """One model with its prices."""
        return Response(ModelSerializer(_visible_model(request.user, pk)).data)

    @extend_schema(request=ModelWriteSerializer, responses=ModelSerializer)
    def patch(self, request: Request, pk: int) -> Response:
        """Change a model; a changed price applies from the next request (events keep their cost)."""
        model = _visible_model(request.user, pk)
        require(request.user, Action.MANAGE_PROVIDERS)
        body = ModelWriteSerializer(model, data=request.data, partial=True, context={"request": request})
        body.is_valid(raise_exception=True)
        model = model_update(model=model, actor=request.user, **body.validated_data)
        return Response(ModelSerializer(model).data)

    @extend_schema(
        responses={
            204: None,
            409: OpenApiResponse(description="A gateway allows only listed models, this one among them."),
        }
    )
    def delete(self, request: Request, pk: int) -> Response:
        """Delete a model (platform admins): requests for it fail from then on; its usage events
        stay. A model that live gateways list is 409 naming them: a gateway's list changes only
        by its own admins (disable the model with PATCH `enabled: false` instead)."""
        model = _visible_model(request.user, pk)
        require(request.user, Action.MANAGE_PROVIDERS)
        model_delete(model=model, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
