"""Who a test acts as: members of a resource group, and clients signed in as them.

Plain functions, not fixtures, because a test often needs several people with different roles;
the `group` fixture they usually take lives in tests/conftest.py.
"""

from __future__ import annotations

from django.test import Client
from rest_framework.test import APIClient

from keys.services import api_token_create
from tests.factories import MembershipFactory, UserFactory


def member_of(group, role: str, **user_fields):
    """A new user (UserFactory with `user_fields`) who is a member of `group` with `role`."""
    user = UserFactory(**user_fields)
    MembershipFactory(user=user, resource_group=group, role=role)
    return user


def api_client_as(user) -> APIClient:
    """A DRF test client force-authenticated as `user`: the API as if the user's session or
    token had been checked (for the authentication itself, use `api_client_with_token`)."""
    client = APIClient()
    client.force_authenticate(user)
    return client


def api_client_with_token(user) -> APIClient:
    """A DRF test client that sends a new personal API token of `user` as its Bearer credential,
    so the request goes through token authentication like a script's would."""
    _, secret = api_token_create(user=user, name="ci")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def console_login(client: Client, group=None, role: str | None = None, **user_fields):
    """Sign `client` (Django's test client) in to the console as a new user and return the user:
    a member of `group` with `role` when a group is given, else a user of no group."""
    user = member_of(group, role, **user_fields) if group is not None else UserFactory(**user_fields)
    client.force_login(user)
    return user
