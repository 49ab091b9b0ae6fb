"""Provider credentials are encrypted at rest and readable only through the provider."""

import pytest
from django.db import connection

from gateway.models import Provider
from gateway.services import provider_create


@pytest.mark.django_db
def test_a_provider_credential_is_stored_encrypted_and_decrypts_to_the_original():
    provider = provider_create(
        name="openai", kind="openai", base_url="https://api.openai.com/v1", credential="sk-live-very-secret"
    )

    with connection.cursor() as cursor:
        cursor.execute("SELECT credential_encrypted FROM gateway_provider WHERE id = %s", [provider.pk])
        stored = cursor.fetchone()[0]
    assert "sk-live-very-secret" not in stored
    assert Provider.objects.get(pk=provider.pk).get_credential() == "sk-live-very-secret"


@pytest.mark.django_db
def test_an_old_encryption_key_still_decrypts_after_a_new_one_is_added(settings):
    settings.AIGW_ENCRYPTION_KEYS = ["old-key"]
    provider = provider_create(name="p", kind="openai", base_url="https://example.test/v1", credential="sk-1")

    settings.AIGW_ENCRYPTION_KEYS = ["new-key", "old-key"]
    assert Provider.objects.get(pk=provider.pk).get_credential() == "sk-1"
