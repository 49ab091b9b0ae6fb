"""API key secrets: their format, and that only a hash and a prefix are stored."""

import re

import pytest

from gateway.setup import gateway_create
from keys.models import ApiKey
from keys.tokens import hash_secret
from tests.factories import ResourceGroupFactory


@pytest.mark.django_db
def test_a_new_key_is_aigw_and_43_base62_characters_and_is_stored_only_as_a_hash():
    _, api_key, secret = gateway_create(resource_group=ResourceGroupFactory(), name="g")

    assert re.fullmatch(r"aigw_[A-Za-z0-9]{43}", secret)
    stored = ApiKey.objects.filter(pk=api_key.pk).values().get()
    assert secret not in str(stored)
    assert stored["hashed_secret"] == hash_secret(secret)
    assert stored["prefix"] == secret[:12]


@pytest.mark.django_db
def test_two_keys_never_share_a_secret():
    group = ResourceGroupFactory()
    secrets = {gateway_create(resource_group=group, name=f"g{i}")[2] for i in range(20)}
    assert len(secrets) == 20
