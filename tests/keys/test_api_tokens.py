"""Personal API tokens: created once, stored as a hash, accepted by the management API as
`Authorization: Bearer`, revocable, last use recorded at most once a minute."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from gateway.models import Role
from gateway.setup import gateway_create
from keys.models import ApiToken
from keys.services import api_token_create, api_token_revoke
from keys.tokens import hash_secret
from quotas.services import spend_budget_create
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def budgeted_key():
    membership = MembershipFactory(role=Role.ADMIN)
    _, api_key, _ = gateway_create(resource_group=membership.resource_group, name="g")
    spend_budget_create(api_key=api_key, limit_usd=10)
    return membership.user, api_key


def get_quota(secret: str, api_key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client.get("/api/v1/quotas", {"quotaEntityId": api_key.quota_entity_id})


def test_a_token_reads_the_management_api_as_its_user_and_is_stored_only_as_a_hash(budgeted_key):
    user, api_key = budgeted_key
    token, secret = api_token_create(user=user, name="ci")

    response = get_quota(secret, api_key)

    assert response.status_code == 200
    assert response.json()["limitAmount"] == 10
    assert re.fullmatch(r"aigwp_[A-Za-z0-9]{43}", secret)
    stored = ApiToken.objects.filter(pk=token.pk).values().get()
    assert secret not in str(stored) and stored["hashed_secret"] == hash_secret(secret)


def test_an_unknown_revoked_or_expired_token_is_401(budgeted_key):
    user, api_key = budgeted_key
    revoked, revoked_secret = api_token_create(user=user, name="old")
    api_token_revoke(token=revoked)
    _, expired_secret = api_token_create(user=user, name="tmp", expires_at=datetime.now(UTC) - timedelta(seconds=1))

    for secret in ("aigwp_" + "x" * 43, revoked_secret, expired_secret):
        response = get_quota(secret, api_key)
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == "Bearer"


def test_a_token_acts_only_within_its_users_groups(budgeted_key):
    _, api_key = budgeted_key
    outsider = MembershipFactory(role=Role.OWNER).user
    _, secret = api_token_create(user=outsider, name="elsewhere")

    assert get_quota(secret, api_key).status_code == 404


def test_last_use_is_recorded_at_most_once_a_minute(budgeted_key):
    user, api_key = budgeted_key
    token, secret = api_token_create(user=user, name="ci")
    start = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)

    with time_machine.travel(start, tick=False):
        get_quota(secret, api_key)
    with time_machine.travel(start + timedelta(seconds=59), tick=False):
        get_quota(secret, api_key)
    token.refresh_from_db()
    assert token.last_used_at == start
    with time_machine.travel(start + timedelta(seconds=61), tick=False):
        get_quota(secret, api_key)
    token.refresh_from_db()
    assert token.last_used_at == start + timedelta(seconds=61)


def test_create_api_token_prints_the_token_alone_on_its_last_line(budgeted_key):
    user, api_key = budgeted_key
    out = StringIO()
    call_command("create_api_token", user.username, "--name", "deploy", stdout=out)

    secret = out.getvalue().strip().splitlines()[-1]
    assert ApiToken.objects.get(hashed_secret=hash_secret(secret)).name == "deploy"
    assert get_quota(secret, api_key).status_code == 200
    with pytest.raises(CommandError, match="no user named"):
        call_command("create_api_token", "nobody", stdout=StringIO())
