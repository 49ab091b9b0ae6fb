"""Guards of the management API: safe retries of creates with an `Idempotency-Key` (Stripe's and
the IETF draft's semantics) and the request body size limit (413)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from core.models import AuditEvent, IdempotencyRecord
from gateway.models import Gateway, Role
from keys.models import ApiKey
from tests.support.people import api_client_with_token, member_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_user(group):
    return member_of(group, Role.ADMIN)


# Idempotency-Key ------------------------------------------------------------------------------


def test_a_retried_create_with_the_same_idempotency_key_answers_the_first_result(group, admin_user):
    client = api_client_with_token(admin_user)
    body = {"name": "support-bot", "resource_group": group.pk}
    headers = {"Idempotency-Key": "4f1c0c1e-create-1"}

    first = client.post("/api/v1/gateways", body, format="json", headers=headers)
    retry = client.post("/api/v1/gateways", body, format="json", headers=headers)

    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()  # the same gateway and the same (only) secret
    assert retry["Idempotent-Replayed"] == "true"
    assert Gateway.objects.filter(name="support-bot").count() == 1
    assert ApiKey.objects.filter(gateway__name="support-bot").count() == 1
    assert AuditEvent.objects.filter(action="api_key.create").count() == 1
    stored = IdempotencyRecord.objects.get()
    assert first.json()["api_key"]["secret"] not in stored.response_body  # encrypted at rest


def test_the_same_idempotency_key_with_another_body_is_a_422(group, admin_user):
    client = api_client_with_token(admin_user)
    headers = {"Idempotency-Key": "k-1"}
    client.post("/api/v1/gateways", {"name": "a", "resource_group": group.pk}, format="json", headers=headers)
    other = client.post("/api/v1/gateways", {"name": "b", "resource_group": group.pk}, format="json", headers=headers)
    assert other.status_code == 422
    assert not Gateway.objects.filter(name="b").exists()


def test_a_retry_while_the_first_request_runs_is_a_409(group, admin_user):
    client = api_client_with_token(admin_user)
    body = {"name": "a", "resource_group": group.pk}
    first = client.post("/api/v1/gateways", body, format="json", headers={"Idempotency-Key": "k-2"})
    IdempotencyRecord.objects.filter(key="k-2").update(status_code=None, response_body="")  # as if still running
    retry = client.post("/api/v1/gateways", body, format="json", headers={"Idempotency-Key": "k-2"})
    assert first.status_code == 201 and retry.status_code == 409


def test_a_failed_create_is_not_remembered_so_a_corrected_retry_runs(group, admin_user):
    client = api_client_with_token(admin_user)
    headers = {"Idempotency-Key": "k-3"}
    bad = client.post("/api/v1/gateways", {"name": "", "resource_group": group.pk}, format="json", headers=headers)
    assert bad.status_code == 400
    assert not IdempotencyRecord.objects.exists()


def test_idempotency_keys_belong_to_their_user_and_expire_after_a_day(group, admin_user):
    other_admin = member_of(group, Role.ADMIN)
    headers = {"Idempotency-Key": "shared"}
    start = datetime(2026, 11, 1, tzinfo=UTC)
    with time_machine.travel(start):
        api_client_with_token(admin_user).post(
            "/api/v1/gateways", {"name": "one", "resource_group": group.pk}, format="json", headers=headers
        )
        theirs = api_client_with_token(other_admin).post(
            "/api/v1/gateways", {"name": "two", "resource_group": group.pk}, format="json", headers=headers
        )
    with time_machine.travel(start + timedelta(hours=25)):
        again = api_client_with_token(admin_user).post(
            "/api/v1/gateways", {"name": "three", "resource_group": group.pk}, format="json", headers=headers
        )
    assert theirs.status_code == 201 and again.status_code == 201
    assert set(Gateway.objects.values_list("name", flat=True)) == {"one", "two", "three"}


def test_an_overlong_idempotency_key_is_a_400(group, admin_user):
    response = api_client_with_token(admin_user).post(
        "/api/v1/gateways",
        {"name": "a", "resource_group": group.pk},
        format="json",
        headers={"Idempotency-Key": "x" * 256},
    )
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["detail"]


def test_a_management_api_body_over_the_limit_is_a_413_and_creates_nothing(group, admin_user, settings):
    settings.AIGW_API_MAX_BODY_BYTES = 1000
    client = api_client_with_token(admin_user)
    body = {"name": "big", "resource_group": group.pk, "padding": "x" * 1000}
    response = client.post("/api/v1/gateways", body, format="json")
    assert response.status_code == 413
    assert "1000 bytes" in response.json()["detail"]
    assert not Gateway.objects.filter(name="big").exists()
    small = client.post("/api/v1/gateways", {"name": "small", "resource_group": group.pk}, format="json")
    assert small.status_code == 201


def test_an_unknown_api_url_answers_json_not_an_html_page(client):
    response = client.post("/api/v1/api-keys/-1/revoke")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}


def test_an_unknown_data_plane_url_answers_an_openai_style_error(client):
    response = client.get("/v1/no-such-endpoint")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
