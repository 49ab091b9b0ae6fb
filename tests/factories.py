"""factory_boy factories for aigw's models."""

from __future__ import annotations

import uuid
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from gateway.models import Gateway, Membership, ResourceGroup, Role
from usage.models import UsageEvent


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("correct horse battery staple")


class ResourceGroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ResourceGroup

    name = factory.Sequence(lambda n: f"group-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    resource_group = factory.SubFactory(ResourceGroupFactory)
    role = Role.ADMIN


class GatewayFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Gateway

    resource_group = factory.SubFactory(ResourceGroupFactory)
    name = factory.Sequence(lambda n: f"gateway-{n}")


class UsageEventFactory(factory.django.DjangoModelFactory):
    """A usage event of `api_key` (required), as the data plane records it. Pass `total_tokens`
    and `cost_usd`; input/output tokens default to halves of the total."""

    class Meta:
        model = UsageEvent

    request_id = factory.LazyFunction(lambda: f"req_{uuid.uuid4().hex}")
    created_at = factory.LazyFunction(timezone.now)
    resource_group = factory.LazyAttribute(lambda e: e.api_key.gateway.resource_group)
    gateway = factory.LazyAttribute(lambda e: e.api_key.gateway)
    api_key_name = factory.LazyAttribute(lambda e: e.api_key.name)
    model_requested = "mock/echo"
    status_code = 200
    total_tokens = 100
    input_tokens = factory.LazyAttribute(lambda e: e.total_tokens // 2)
    output_tokens = factory.LazyAttribute(lambda e: e.total_tokens - e.total_tokens // 2)
    cost_usd = Decimal(0)

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        """Written the way the recorder writes events, so the usage rollups see them."""
        from usage.rollups import insert_events

        event = model_class(*args, **kwargs)
        insert_events([event])
        return model_class.objects.get(request_id=event.request_id)
