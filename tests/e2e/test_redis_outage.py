"""Redis down: the data plane refuses with an OpenAI-shaped 503 and `Retry-After`, never serves a
request it cannot check, and serves again from the first request after Redis is back (no stale
pooled connection answers for it). The test's own `redis-server` is killed (SIGKILL) and
restarted, empty, on the same port."""

from __future__ import annotations

import socket
import threading
import time

import openai
import pytest
from django.db import connections
from django.test import Client
from django.urls import reverse

from core.permissions import Role
from gateway.setup import gateway_create
from keys.services import api_key_revoke
from quotas.models import LimitMode
from quotas.services import token_quota_set
from tests.conftest import _server_env, _wait_until_server_is_quiet, wait_for_usage_event
from tests.factories import ResourceGroupFactory
from tests.support.errors import assert_service_unavailable
from tests.support.live_server import LiveServer
from tests.support.people import api_client_as, member_of
from tests.support.redis_process import RedisProcess
from usage.models import UsageEvent

CHAT = {"model": "mock/echo", "messages": [{"role": "user", "content": "Hello there, gateway!"}]}


@pytest.fixture
def redis_server(tmp_path):
    server = RedisProcess(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def server(redis_server, transactional_db):
    from gateway.services import mock_provider_ensure

    mock_provider_ensure()
    live = LiveServer({**_server_env(), "REDIS_URL": redis_server.url})
    yield live
    live.stop()
    _wait_until_server_is_quiet()


def _events_served(key, expected: int, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while (count := UsageEvent.objects.filter(api_key=key, status_code=200).count()) < expected:
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return count


def _served(client: openai.OpenAI) -> str:
    return client.chat.completions.create(**CHAT).choices[0].message.content


def test_with_redis_down_a_hard_limited_key_gets_503_with_retry_after_and_is_served_once_it_is_back(
    server, redis_server
):
    _, key, secret = gateway_create(resource_group=ResourceGroupFactory(), name="needs-redis")
    token_quota_set(api_key=key, limit_tokens=10**6, mode=LimitMode.HARD)
    client = openai.OpenAI(base_url=server.v1, api_key=secret, max_retries=0)
    assert _served(client)

    redis_server.kill()
    refusals = []
    for _ in range(3):
        with pytest.raises(openai.APIStatusError) as refused:
            client.chat.completions.create(**CHAT)
        assert_service_unavailable(refused.value, "Redis")
        refusals.append(refused.value.response.headers["x-request-id"])

    redis_server.start()
    assert _served(client)  # the first request after the restart, on fresh connections
    assert _served(client)
    assert _events_served(key, expected=3) == 3  # the three answers are metered, the refusals served nothing
    # Each 503 is on the record too: its own usage event, with no tokens and no cost, and no key
    # (whether the key is still valid is what could not be checked), only the client's address.
    for request_id in refusals:
        event = wait_for_usage_event(request_id)
        assert (event.status_code, event.error_code, event.api_key_id) == (503, "service_unavailable", None)
        assert event.client_address == "127.0.0.1"
        assert (event.total_tokens, event.cost_usd, event.provider) == (0, 0, "")


def test_with_redis_down_a_key_never_seen_gets_503_not_401(server, redis_server):
    _, _, secret = gateway_create(resource_group=ResourceGroupFactory(), name="cold")
    redis_server.kill()
    client = openai.OpenAI(base_url=server.v1, api_key=secret, max_retries=0)
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(**CHAT)
    assert_service_unavailable(refused.value, "Redis")
    redis_server.start()
    assert _served(client)


def test_a_key_revoked_while_redis_is_down_is_refused_from_the_first_request_after_it_is_back(
    server, redis_server, settings
):
    # A group whose version the server's Redis has never held: before and after the restart it
    # would read as "none", the same, had the server not given it a random start.
    _, key, secret = gateway_create(resource_group=ResourceGroupFactory(), name="revoked-in-outage")
    settings.REDIS_URL = redis_server.url  # the console's bumps go to the server's Redis from here
    client = openai.OpenAI(base_url=server.v1, api_key=secret, max_retries=0)
    assert _served(client)  # the key is warm in the server process

    redis_server.kill()
    api_key_revoke(api_key=key)  # committed; its config-version bump is lost with Redis
    redis_server.start()  # empty: every version is gone

    with pytest.raises(openai.AuthenticationError) as refused:
        client.chat.completions.create(**CHAT)
    assert refused.value.response.json()["error"]["code"] == "key_revoked"


def test_with_redis_not_answering_the_console_and_the_management_api_keep_serving(transactional_db, settings, caplog):
    # A Redis that accepts connections and never answers (a hung server, a half-open link).
    with socket.create_server(("127.0.0.1", 0)) as silent:
        group = ResourceGroupFactory()
        gateway, console_key, _ = gateway_create(resource_group=group, name="console")
        _, api_key, _ = gateway_create(resource_group=group, name="api")
        user = member_of(group, Role.ADMIN)
        settings.REDIS_URL = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        console = Client()
        console.force_login(user)
        answers: dict[str, int] = {}

        def revoke_both() -> None:
            try:
                answers["console"] = console.post(reverse("api-key-revoke", args=[console_key.pk])).status_code
                answers["api"] = api_client_as(user).post(f"/api/v1/api-keys/{api_key.pk}/revoke").status_code
                answers["page"] = console.get(reverse("gateway-detail", args=[gateway.pk])).status_code
            finally:
                connections.close_all()  # this thread's own database connection

        worker = threading.Thread(target=revoke_both)
        worker.start()
        # Each config-version bump after a commit waits at most BUMP_TIMEOUT_SECONDS (1 s) for
        # Redis, with no retry: these three requests took 2.5 s; with Redis' client defaults (5 s,
        # retried) they took 15 s.
        worker.join(timeout=8)
        assert not worker.is_alive(), "the console waited on a Redis that does not answer"
    assert answers["console"] < 400 and answers["api"] == 200 and answers["page"] == 200
    console_key.refresh_from_db()
    api_key.refresh_from_db()
    assert console_key.status == api_key.status == "revoked"
    assert "could not be bumped" in caplog.text  # the operator is told
