"""Every row of the SPEC §4 error table that the walking skeleton covers, over real HTTP, in
OpenAI's error shape, with `x-request-id` on every answer."""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal

import httpx
import openai
import pytest
from django.utils import timezone

from gateway.models import GatewayStatus, Model
from gateway.pricing import Prices
from gateway.services import model_create, provider_create
from gateway.setup import gateway_create
from keys.models import ApiKey, ApiKeyStatus, SuspendedReason
from keys.services import api_key_revoke
from quotas.services import token_quota_set
from tests.conftest import wait_for_usage_event
from tests.factories import ResourceGroupFactory

CHAT = {"model": "mock/echo", "messages": [{"role": "user", "content": "Hello there, gateway!"}]}


def new_key(**kwargs):
    return gateway_create(resource_group=ResourceGroupFactory(), name="errors", **kwargs)


def post(live, body=CHAT, secret: str | None = None, headers: dict | None = None, content: bytes | None = None):
    headers = dict(headers or {})
    if secret is not None:
        headers["authorization"] = f"Bearer {secret}"
    if content is not None:
        return httpx.post(f"{live.v1}/chat/completions", content=content, headers=headers, timeout=10)
    return httpx.post(f"{live.v1}/chat/completions", json=body, headers=headers, timeout=10)


def assert_error(response: httpx.Response, status: int, code: str, type_: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["x-request-id"].startswith("req_")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code
    assert error["message"]
    if type_ is not None:
        assert error["type"] == type_
    return error


def eventually(check, timeout: float = 5.0):
    """Retry `check` until it stops raising AssertionError: for what the server writes in the
    background (a key suspended by its quota), not for config changes, which hold at once."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_a_request_without_a_key_or_with_an_unknown_key_is_401_invalid_api_key(live):
    assert_error(post(live), 401, "invalid_api_key", "authentication_error")
    assert_error(post(live, secret="aigw_" + "x" * 43), 401, "invalid_api_key")
    assert_error(httpx.get(f"{live.v1}/models"), 401, "invalid_api_key")


def test_the_key_is_accepted_in_the_azure_style_api_key_header(live):
    _, _, secret = new_key()
    response = post(live, headers={"api-key": secret})
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "Echo: Hello there, gateway!"


def test_a_revoked_key_is_401_key_revoked(live):
    _, api_key, secret = new_key()
    api_key_revoke(api_key=api_key)
    assert_error(post(live, secret=secret), 401, "key_revoked")


def test_an_expired_key_is_401_key_expired(live):
    _, api_key, secret = new_key(expires_at=timezone.now() + timedelta(days=7))
    ApiKey.objects.filter(pk=api_key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert_error(post(live, secret=secret), 401, "key_expired")


def test_a_key_suspended_by_an_admin_is_403_key_suspended(live):
    _, api_key, secret = new_key()
    ApiKey.objects.filter(pk=api_key.pk).update(status=ApiKeyStatus.SUSPENDED, suspended_reason=SuspendedReason.ADMIN)
    assert_error(post(live, secret=secret), 403, "key_suspended", "permission_error")


def test_a_disabled_or_deleted_gateway_is_403_gateway_disabled(live):
    gateway, _, secret = new_key()
    gateway.status = GatewayStatus.DISABLED
    gateway.save()
    assert_error(post(live, secret=secret), 403, "gateway_disabled")

    deleted, _, deleted_secret = new_key()
    deleted.deleted_at = timezone.now()
    deleted.save()
    assert_error(post(live, secret=deleted_secret), 403, "gateway_disabled")


def test_an_unknown_model_or_one_the_gateway_does_not_allow_is_404_model_not_found(live):
    _, _, secret = new_key(allowed_models=[Model.objects.get(name="mock/echo")])
    error = assert_error(post(live, {**CHAT, "model": "gpt-nope"}, secret=secret), 404, "model_not_found")
    assert error["param"] == "model"
    assert_error(post(live, {**CHAT, "model": "mock/large"}, secret=secret), 404, "model_not_found")


def test_the_token_quota_rejects_once_reached_suspends_the_key_and_reopens_when_raised(live):
    gateway, api_key, secret = new_key(token_quota=40)  # each echo request uses 19 tokens
    client = openai.OpenAI(base_url=live.v1, api_key=secret, max_retries=0)

    for _ in range(3):  # 19, 38, then 57: the request that crosses the quota completes
        client.chat.completions.create(**CHAT)
    with pytest.raises(openai.RateLimitError) as rejected:
        client.chat.completions.create(**CHAT)

    assert rejected.value.code == "token_quota_exceeded"
    assert rejected.value.type == "insufficient_quota"
    assert "57 of 40 tokens" in rejected.value.message
    eventually(lambda: _assert_suspended(api_key))

    token_quota_set(gateway=gateway, limit_tokens=1000)
    assert ApiKey.objects.get(pk=api_key.pk).status == ApiKeyStatus.ACTIVE
    _assert_served(client)  # on the next request


def _assert_suspended(api_key):
    api_key.refresh_from_db()
    assert (api_key.status, api_key.suspended_reason) == (ApiKeyStatus.SUSPENDED, SuspendedReason.TOKEN_QUOTA)


def _assert_served(client):
    try:
        client.chat.completions.create(**CHAT)
    except openai.RateLimitError as exc:
        raise AssertionError("still rejected") from exc


def test_bad_bodies_are_400_invalid_request_error_and_a_huge_one_is_413(live):
    _, _, secret = new_key()
    assert_error(post(live, secret=secret, content=b"{not json"), 400, "invalid_request_error")
    assert_error(post(live, secret=secret, content=b"[1, 2]"), 400, "invalid_request_error")
    missing_model = assert_error(
        post(live, {"messages": CHAT["messages"]}, secret=secret), 400, "invalid_request_error"
    )
    assert missing_model["param"] == "model"
    no_messages = assert_error(post(live, {"model": "mock/echo"}, secret=secret), 400, "invalid_request_error")
    assert no_messages["param"] == "messages"
    huge = {**CHAT, "messages": [{"role": "user", "content": "x" * (4 * 1024 * 1024)}]}  # server limit: 4 MiB
    assert_error(post(live, huge, secret=secret), 413, "invalid_request_error")


@pytest.fixture
def fake_models(live, fake_upstream):
    provider = provider_create(name="fake", kind="openai", base_url=fake_upstream.base_url, credential="sk-x")
    for name in ("fake-400", "fake-500", "fake-slow"):
        model_create(name=name, provider=provider, prices=Prices(input=Decimal(1), output=Decimal(1)))


def test_upstream_failures_are_502_or_504_and_are_not_charged(live, fake_models):
    _, _, secret = new_key()

    failed = post(live, {**CHAT, "model": "fake-500"}, secret=secret)
    assert_error(failed, 502, "upstream_error", "upstream_error")
    timed_out = post(live, {**CHAT, "model": "fake-slow"}, secret=secret)  # server timeout: 1.5 s
    assert_error(timed_out, 504, "upstream_timeout")

    for response, code in ((failed, "upstream_error"), (timed_out, "upstream_timeout")):
        event = wait_for_usage_event(response.headers["x-request-id"])
        assert (event.status_code, event.error_code) == (response.status_code, code)
        assert (event.total_tokens, event.cost_usd) == (0, Decimal(0))


def test_an_upstream_client_error_passes_through_with_its_explanation(live, fake_models):
    _, _, secret = new_key()
    response = post(live, {**CHAT, "model": "fake-400"}, secret=secret)
    assert_error(response, 400, "context_length_exceeded")
    event = wait_for_usage_event(response.headers["x-request-id"])
    assert (event.status_code, event.cost_usd) == (400, Decimal(0))


def test_after_a_rotation_the_old_secret_is_refused_and_the_new_one_works(live):
    from keys.services import api_key_rotate

    _, api_key, old_secret = new_key()
    assert post(live, secret=old_secret).status_code == 200
    _, new_secret = api_key_rotate(api_key=api_key)

    assert_error(post(live, secret=old_secret), 401, "invalid_api_key")  # on the next request
    assert post(live, secret=new_secret).status_code == 200


def test_an_error_the_gateway_did_not_expect_is_an_openai_shaped_500_naming_the_logged_request_id(live):
    """A database that refuses the key lookup's statement (here: a schema one migration behind,
    a column renamed under the running server) is a bug, not an outage: 500 `internal_error`,
    OpenAI-shaped, with the request id that the server's log line and traceback carry."""
    from django.db import connection

    _, _, secret = new_key()
    table = ApiKey._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {table} RENAME COLUMN name TO name_out_of_date")
    try:
        response = post(live, secret=secret)
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {table} RENAME COLUMN name_out_of_date TO name")

    request_id = response.headers["x-request-id"]
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "error": {
            "message": f"The gateway failed on this request ({request_id}); it has been logged.",
            "type": "server_error",
            "param": None,
            "code": "internal_error",
        }
    }
    deadline = time.monotonic() + 5
    while f"request {request_id} failed" not in (log := live.log_path.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    logged = log[log.index(f"request {request_id} failed") :]
    assert "Traceback" in logged and "name_out_of_date" not in logged.split("Traceback")[0]
    assert post(live, secret=secret).status_code == 200  # the schema is right again: served
