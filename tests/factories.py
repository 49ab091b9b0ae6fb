"""factory_boy factories for aigw's models."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from gateway.models import Gateway, Membership, ResourceGroup, Role


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
