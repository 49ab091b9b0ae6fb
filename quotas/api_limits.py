"""The limits of one API key, gateway or resource group in the management API (SPEC §3, §5).

- `GET /api/v1/{api-keys|gateways|resource-groups}/<id>/limits` → its token quota, spend budget
  (archived ones too, marked) and rate limit, each with what is used in the current window.
- `PUT …/limits/token-quota` `{"limit_tokens", "refresh_period", "mode"}`; `DELETE` removes it.
- `PUT …/limits/spend-budget` `{"limit_usd", "refresh_period", "mode", "active"}` creates the
  budget, or changes it and restores it if archived; `DELETE` archives it (the owner is
  unlimited again; Vercel's semantics, see quotas.api).
- `PUT …/limits/rate-limit` `{"tokens_per_minute", "requests_per_minute"}` (at least one);
  `DELETE` removes it.

Reading needs `Action.VIEW_SETTINGS` in the owner's resource group; changing needs
`Action.MANAGE_GATEWAYS` (owner, admin), else 403; an owner in a group the user is not a member
of is 404. Every read goes through the policy (`restrict`); writes go through `quotas.services`,
which audit them, and their errors reach the one exception handler (`core.api_errors`).
Changes reach the data plane on its next request.
"""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from core.errors import NotFound
from core.permissions import Action, User, gateways_for, groups_for, require
from gateway.models import Gateway, ResourceGroup
from keys.models import ApiKey
from keys.selectors import api_key_for
from quotas.models import Level, LimitMode, RateLimit, RefreshPeriod, SpendBudget, TokenQuota
from quotas.periods import window_end, window_start
from quotas.selectors import used_in_window
from quotas.services import rate_limit_set, spend_budget_archive, spend_budget_set, token_quota_set

LEVELS: dict[str, str] = {"api-keys": Level.API_KEY, "gateways": Level.GATEWAY, "resource-groups": Level.RESOURCE_GROUP}
_OWNER_FIELDS: dict[str, str] = {
    Level.API_KEY: "api_key",
    Level.GATEWAY: "gateway",
    Level.RESOURCE_GROUP: "resource_group",
}
NOT_FOUND: dict[str, str] = {
    Level.API_KEY: "API key not found.",
    Level.GATEWAY: "Gateway not found.",
    Level.RESOURCE_GROUP: "Resource group not found.",
}
MANAGE_DENIED = "Changing limits needs the owner or admin role in the resource group."


# Serializers --------------------------------------------------------------------------------


class TokenQuotaStateSerializer(serializers.Serializer):
    """A token quota and the tokens (every type) used in its current window (UTC)."""

    limit_tokens = serializers.IntegerField()
    refresh_period = serializers.ChoiceField(choices=RefreshPeriod.choices)
    mode = serializers.ChoiceField(choices=LimitMode.choices)
    used_tokens = serializers.IntegerField()
    window_start = serializers.DateTimeField(allow_null=True)
    resets_at = serializers.DateTimeField(allow_null=True)


class SpendBudgetStateSerializer(serializers.Serializer):
    """A spend budget (USD) and the cost of its current window; `archived` ones are not enforced."""

    limit_usd = serializers.DecimalField(max_digits=14, decimal_places=4, coerce_to_string=True)
    refresh_period = serializers.ChoiceField(choices=RefreshPeriod.choices)
    mode = serializers.ChoiceField(choices=LimitMode.choices)
    active = serializers.BooleanField()
    archived = serializers.BooleanField()
    current_spend_usd = serializers.DecimalField(max_digits=20, decimal_places=10, coerce_to_string=True)
    window_start = serializers.DateTimeField(allow_null=True)
    resets_at = serializers.DateTimeField(allow_null=True)


class RateLimitStateSerializer(serializers.Serializer):
    """Tokens and requests per UTC minute; null is no limit."""

    tokens_per_minute = serializers.IntegerField(allow_null=True)
    requests_per_minute = serializers.IntegerField(allow_null=True)


class LimitsSerializer(serializers.Serializer):
    """Every limit of one owner; a kind it does not have is null."""

    level = serializers.ChoiceField(choices=Level.choices)
    id = serializers.IntegerField()
    token_quota = TokenQuotaStateSerializer(allow_null=True)
    spend_budget = SpendBudgetStateSerializer(allow_null=True)
    rate_limit = RateLimitStateSerializer(allow_null=True)


class TokenQuotaInputSerializer(serializers.Serializer):
    """`PUT …/limits/token-quota` body."""

    limit_tokens = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    refresh_period = serializers.ChoiceField(choices=RefreshPeriod.choices, default=RefreshPeriod.NONE)
    mode = serializers.ChoiceField(choices=LimitMode.choices, default=LimitMode.SOFT)


class SpendBudgetInputSerializer(serializers.Serializer):
    """`PUT …/limits/spend-budget` body: `limit_usd` at least 1 USD, at most 4 decimal places."""

    limit_usd = serializers.DecimalField(max_digits=14, decimal_places=4, min_value=1)
    refresh_period = serializers.ChoiceField(choices=RefreshPeriod.choices, default=RefreshPeriod.NONE)
    mode = serializers.ChoiceField(choices=LimitMode.choices, default=LimitMode.SOFT)
    active = serializers.BooleanField(default=True)


class RateLimitInputSerializer(serializers.Serializer):
    """`PUT …/limits/rate-limit` body: at least one of TPM and RPM."""

    tokens_per_minute = serializers.IntegerField(min_value=1, max_value=2**31 - 1, required=False, allow_null=True)
    requests_per_minute = serializers.IntegerField(min_value=1, max_value=2**31 - 1, required=False, allow_null=True)

    def validate(self, attrs: dict) -> dict:
        """Refuse a body with neither limit (use DELETE to remove the rate limit)."""
        if attrs.get("tokens_per_minute") is None and attrs.get("requests_per_minute") is None:
            raise serializers.ValidationError(
                {"tokens_per_minute": ["Give tokens_per_minute and/or requests_per_minute; DELETE removes the limit."]}
            )
        return attrs


# Reading ------------------------------------------------------------------------------------


def _owner(user: User, level: str, pk: int) -> tuple[ApiKey | Gateway | ResourceGroup, ResourceGroup]:
    """The owner `pk` at `level` and its resource group, if `user` may view it; else 404."""
    owner: ApiKey | Gateway | ResourceGroup | None
    group: ResourceGroup | None
    if level == Level.API_KEY:
        api_key = api_key_for(user, pk)
        owner, group = api_key, api_key.gateway.resource_group if api_key is not None else None
    elif level == Level.GATEWAY:
        gateway = gateways_for(user, Action.VIEW_SETTINGS).select_related("resource_group").filter(pk=pk).first()
        owner, group = gateway, gateway.resource_group if gateway is not None else None
    else:
        owner = group = groups_for(user, Action.VIEW_SETTINGS).filter(pk=pk).first()
    if owner is None or group is None:
        raise NotFound(NOT_FOUND[level])
    return owner, group


def limits_of(user: User, level: str, owner) -> dict:
    """`{"level", "id", "token_quota", "spend_budget", "rate_limit"}` of one owner, read through
    the policy (`restrict(user, Action.VIEW_SETTINGS)`), with the tokens and cost used in each
    limit's current UTC window (from the usage events)."""
    now = timezone.now()
    owner_field = _OWNER_FIELDS[level]
    data: dict = {"level": level, "id": owner.pk, "token_quota": None, "spend_budget": None, "rate_limit": None}
    quota = TokenQuota.objects.restrict(user).filter(**{owner_field: owner}).first()
    if quota is not None:
        since = window_start(quota.refresh_period, now)
        data["token_quota"] = {
            "limit_tokens": quota.limit_tokens,
            "refresh_period": quota.refresh_period,
            "mode": quota.mode,
            "used_tokens": used_in_window(level=level, entity_id=owner.pk, since=since).tokens,
            "window_start": None if quota.refresh_period == RefreshPeriod.NONE else since,
            "resets_at": window_end(quota.refresh_period, now),
        }
    budget = SpendBudget.objects.restrict(user).filter(**{owner_field: owner}).first()
    if budget is not None:
        since = window_start(budget.refresh_period, now)
        data["spend_budget"] = {
            "limit_usd": budget.limit_usd,
            "refresh_period": budget.refresh_period,
            "mode": budget.mode,
            "active": budget.active,
            "archived": budget.archived_at is not None,
            "current_spend_usd": used_in_window(level=level, entity_id=owner.pk, since=since).usd,
            "window_start": None if budget.refresh_period == RefreshPeriod.NONE else since,
            "resets_at": window_end(budget.refresh_period, now),
        }
    rate = RateLimit.objects.restrict(user).filter(**{owner_field: owner}).first()
    if rate is not None:
        data["rate_limit"] = {
            "tokens_per_minute": rate.tokens_per_minute,
            "requests_per_minute": rate.requests_per_minute,
        }
    return LimitsSerializer(data).data


# Views --------------------------------------------------------------------------------------

_WRITE_ERRORS = {
    400: OpenApiResponse(description='A field is invalid: `{"<field>": ["<message>"]}`.'),
    403: OpenApiResponse(description=MANAGE_DENIED),
    404: OpenApiResponse(description="No such owner, or not in one of the user's resource groups."),
}


class _LimitsView(GenericAPIView):
    serializer_class = LimitsSerializer
    # The services' field names are this API's (`limit_tokens`, `limit_usd`, `tokens_per_minute`…).
    service_fields: dict[str, str] = {}

    def _owner_for_write(self, request: Request, owners: str, pk: int):
        level = LEVELS[owners]
        owner, group = _owner(request.user, level, pk)
        require(request.user, Action.MANAGE_GATEWAYS, group, MANAGE_DENIED)
        return level, owner

    @staticmethod
    def _owner_kwargs(level: str, owner) -> dict:
        return {_OWNER_FIELDS[level]: owner}


class LimitsView(_LimitsView):
    """`GET /api/v1/{api-keys|gateways|resource-groups}/<id>/limits`."""

    @extend_schema(
        responses={200: LimitsSerializer, 404: OpenApiResponse(description="No such owner, or not visible.")},
        examples=[
            OpenApiExample(
                "A key with a monthly budget",
                response_only=True,
                value={
                    "level": "api_key",
                    "id": 7,
                    "token_quota": None,
                    "spend_budget": {
                        "limit_usd": "10.0000",
                        "refresh_period": "monthly",
                        "mode": "soft",
                        "active": True,
                        "archived": False,
                        "current_spend_usd": "1.0400000000",
                        "window_start": "2026-11-01T00:00:00Z",
                        "resets_at": "2026-12-01T00:00:00Z",
                    },
                    "rate_limit": {"tokens_per_minute": 20000, "requests_per_minute": None},
                },
            )
        ],
    )
    def get(self, request: Request, owners: str, pk: int) -> Response:
        """Every limit of the owner with its use in the current window."""
        level = LEVELS[owners]
        owner, _ = _owner(request.user, level, pk)
        return Response(limits_of(request.user, level, owner))


class TokenQuotaView(_LimitsView):
    """`PUT` and `DELETE …/limits/token-quota`."""

    @extend_schema(request=TokenQuotaInputSerializer, responses={200: LimitsSerializer, **_WRITE_ERRORS})
    def put(self, request: Request, owners: str, pk: int) -> Response:
        """Set the token quota; keys suspended by it are active again at once."""
        level, owner = self._owner_for_write(request, owners, pk)
        body = TokenQuotaInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        token_quota_set(**self._owner_kwargs(level, owner), **body.validated_data)
        return Response(limits_of(request.user, level, owner))

    @extend_schema(responses={204: None, 403: _WRITE_ERRORS[403], 404: _WRITE_ERRORS[404]})
    def delete(self, request: Request, owners: str, pk: int) -> Response:
        """Remove the token quota (unlimited)."""
        level, owner = self._owner_for_write(request, owners, pk)
        token_quota_set(**self._owner_kwargs(level, owner), limit_tokens=None)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SpendBudgetView(_LimitsView):
    """`PUT` and `DELETE …/limits/spend-budget`."""

    @extend_schema(
        request=SpendBudgetInputSerializer,
        responses={200: LimitsSerializer, **_WRITE_ERRORS},
        examples=[
            OpenApiExample(
                "$50 a month, hard",
                request_only=True,
                value={"limit_usd": "50", "refresh_period": "monthly", "mode": "hard"},
            )
        ],
    )
    def put(self, request: Request, owners: str, pk: int) -> Response:
        """Create the spend budget, or change it (restoring it if archived)."""
        level, owner = self._owner_for_write(request, owners, pk)
        body = SpendBudgetInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        spend_budget_set(**self._owner_kwargs(level, owner), **body.validated_data)
        return Response(limits_of(request.user, level, owner))

    @extend_schema(responses={204: None, 403: _WRITE_ERRORS[403], 404: _WRITE_ERRORS[404]})
    def delete(self, request: Request, owners: str, pk: int) -> Response:
        """Archive the spend budget: the owner is unlimited again; PUT restores it."""
        level, owner = self._owner_for_write(request, owners, pk)
        budget = (
            SpendBudget.objects.restrict(request.user, Action.MANAGE_GATEWAYS)
            .filter(**self._owner_kwargs(level, owner), archived_at__isnull=True)
            .first()
        )
        if budget is not None:
            spend_budget_archive(budget=budget)
        return Response(status=status.HTTP_204_NO_CONTENT)


class RateLimitView(_LimitsView):
    """`PUT` and `DELETE …/limits/rate-limit`."""

    @extend_schema(request=RateLimitInputSerializer, responses={200: LimitsSerializer, **_WRITE_ERRORS})
    def put(self, request: Request, owners: str, pk: int) -> Response:
        """Set TPM and/or RPM (an absent one is no limit)."""
        level, owner = self._owner_for_write(request, owners, pk)
        body = RateLimitInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        rate_limit_set(
            **self._owner_kwargs(level, owner),
            tokens_per_minute=body.validated_data.get("tokens_per_minute"),
            requests_per_minute=body.validated_data.get("requests_per_minute"),
        )
        return Response(limits_of(request.user, level, owner))

    @extend_schema(responses={204: None, 403: _WRITE_ERRORS[403], 404: _WRITE_ERRORS[404]})
    def delete(self, request: Request, owners: str, pk: int) -> Response:
        """Remove the rate limit."""
        level, owner = self._owner_for_write(request, owners, pk)
        rate_limit_set(**self._owner_kwargs(level, owner), tokens_per_minute=None, requests_per_minute=None)
        return Response(status=status.HTTP_204_NO_CONTENT)
