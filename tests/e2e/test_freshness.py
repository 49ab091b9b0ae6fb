"""A change holds on the very next request (SPEC §3), in every gateway process: the server runs
3 worker processes on PostgreSQL + Redis (one on the embedded default); each test warms every
worker's cache with the key first, makes one change through a service or the management API,
and then sends ROUNDS requests, each on a new connection (spread over the workers by the
kernel), with no wait: every one of them must see the change. And a warm key costs no SQL."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.db import connection

from gateway.models import GatewayStatus, Model
from gateway.pricing import Prices
from gateway.services import gateway_update, mock_provider_ensure, model_create, model_update, provider_create
from gateway.setup import gateway_create
from keys.models import ApiKey
from keys.services import api_key_create, api_key_revoke, api_key_rotate
from quotas.models import LimitMode
from quotas.services import rate_limit_set, token_quota_set
from tests.conftest import wait_for_usage_event
from tests.factories import ResourceGroupFactory
from tests.support.inprocess import InProcessGateway
from tests.support.people import api_client_as, member_of

ROUNDS = 12
CHAT = {"model": "mock/echo", "max_tokens": 7, "messages": [{"role": "user", "content": "Hello there, gateway!"}]}


def _post(cluster, secret: str, body: dict = CHAT) -> httpx.Response:
    return httpx.post(f"{cluster.v1}/chat/completions", json=body, headers={"authorization": f"Bearer {secret}"})


def _get(cluster, path: str, secret: str) -> httpx.Response:
    return httpx.get(f"{cluster.v1}{path}", headers={"authorization": f"Bearer {secret}"})


def _statuses(cluster, secret: str, body: dict = CHAT) -> list[int]:
    return [_post(cluster, secret, body).status_code for _ in range(ROUNDS)]


@pytest.fixture
def warm(cluster):
    """A gateway and key that every worker has served (and cached) ROUNDS times over."""
    gateway, api_key, secret = gateway_create(resource_group=ResourceGroupFactory(), name="fresh")
    assert _statuses(cluster, secret) == [200] * ROUNDS
    return gateway, api_key, secret


def test_a_revoked_key_is_refused_on_the_next_request_by_every_worker(cluster, warm):
    _, api_key, secret = warm
    api_key_revoke(api_key=api_key)
    assert _statuses(cluster, secret) == [401] * ROUNDS


def test_after_a_rotation_the_old_secret_is_refused_and_the_new_one_served_at_once(cluster, warm):
    _, api_key, old = warm
    _, new = api_key_rotate(api_key=api_key)
    assert _statuses(cluster, old) == [401] * ROUNDS
    assert _statuses(cluster, new) == [200] * ROUNDS


def test_a_disabled_gateway_is_refused_and_an_enabled_one_served_on_the_next_request(cluster, warm):
    gateway, _, secret = warm
    gateway_update(gateway=gateway, status=GatewayStatus.DISABLED)
    assert _statuses(cluster, secret) == [403] * ROUNDS
    gateway_update(gateway=gateway, status=GatewayStatus.ENABLED)
    assert _statuses(cluster, secret) == [200] * ROUNDS


def test_a_limit_added_raised_lowered_and_removed_holds_on_the_next_request(cluster, warm):
    gateway, api_key, secret = warm  # it has used 12 x 19 = 228 tokens
    token_quota_set(api_key=api_key, limit_tokens=100)  # added, already used up
    assert _statuses(cluster, secret) == [429] * ROUNDS
    token_quota_set(api_key=api_key, limit_tokens=1_000_000)  # raised
    assert _statuses(cluster, secret) == [200] * ROUNDS
    token_quota_set(api_key=api_key, limit_tokens=100)  # lowered
    assert _statuses(cluster, secret) == [429] * ROUNDS
    token_quota_set(api_key=api_key, limit_tokens=None)  # removed
    assert _statuses(cluster, secret) == [200] * ROUNDS
    # a gateway-level RPM of 1: at most one more request per UTC minute (RPM windows are whole
    # UTC minutes, so a burst that crosses a minute's end may get one in each; the server runs on
    # the real clock, so the test counts the minutes it spanned)
    rate_limit_set(gateway=gateway, tokens_per_minute=None, requests_per_minute=1)
    first_minute = datetime.now(UTC).replace(second=0, microsecond=0)
    statuses = _statuses(cluster, secret)
    minutes = 1 if datetime.now(UTC).replace(second=0, microsecond=0) == first_minute else 2
    assert statuses.count(200) <= minutes
    assert statuses.count(429) >= ROUNDS - minutes


def test_a_budget_created_through_the_quotas_api_is_read_by_the_key_on_the_next_request(cluster, warm):
    gateway, api_key, secret = warm
    entity = f"api_key_id_{api_key.pk}"
    assert _get(cluster, f"/quotas?quotaEntityId={entity}", secret).status_code == 404
    admin = api_client_as(member_of(gateway.resource_group, "admin"))
    created = admin.post("/api/v1/quotas", {"quotaEntityId": entity, "limitAmount": 25}, format="json")
    assert created.status_code in (200, 201), created.content

    quotas = [_get(cluster, f"/quotas?quotaEntityId={entity}", secret) for _ in range(ROUNDS)]
    assert [r.status_code for r in quotas] == [200] * ROUNDS
    assert {Decimal(str(r.json()["limitAmount"])) for r in quotas} == {Decimal(25)}
    keys = [_get(cluster, "/key", secret).json() for _ in range(ROUNDS)]
    assert all("25" in str(key) for key in keys)


def test_a_new_key_is_served_on_its_first_request(cluster, warm):
    gateway, _, _ = warm
    for _ in range(ROUNDS):
        _, secret = api_key_create(gateway=gateway, name="just-made")
        assert _post(cluster, secret).status_code == 200


def test_a_new_model_a_disabled_one_and_a_new_price_hold_on_the_next_request(cluster, warm):
    _, _, secret = warm
    provider = provider_create(name="fresh-mock", kind="mock")
    body = {**CHAT, "model": "fresh"}
    assert _statuses(cluster, secret, body) == [404] * ROUNDS  # every worker has loaded the catalog
    model = model_create(
        name="fresh", provider=provider, upstream_model="mock/echo", prices=Prices(input=Decimal(1), output=Decimal(1))
    )
    assert _statuses(cluster, secret, body) == [200] * ROUNDS

    model_update(model=model, input_price_per_mtok=Decimal(1_000_000), output_price_per_mtok=Decimal(1_000_000))
    costs = {wait_for_usage_event(_post(cluster, secret, body).headers["x-request-id"]).cost_usd for _ in range(ROUNDS)}
    assert costs == {Decimal(19)}  # 19 tokens at $1 each

    model_update(model=model, enabled=False)
    assert _statuses(cluster, secret, body) == [404] * ROUNDS
    assert Model.objects.filter(name="fresh", enabled=False).exists()


def test_a_warm_key_with_limits_sees_a_change_at_once_and_each_request_is_counted_once(cluster, warm):
    """A warm key with limits is checked against the limits this worker has cached while the
    same Redis round trip reads its versions; when they turn out changed, that admission is
    given back and the request taken again as things are now: the change holds, and every
    request is in its RPM and token-quota counters exactly once."""
    gateway, api_key, secret = warm  # 12 requests, 228 tokens, before it had limits
    provider = provider_create(name="priced-mock", kind="mock")
    model = model_create(
        name="priced", provider=provider, upstream_model="mock/echo", prices=Prices(input=Decimal(1), output=Decimal(1))
    )
    body = {**CHAT, "model": "priced"}
    if datetime.now(UTC).second >= 50:  # the RPM counter is per UTC minute: all of it in one
        time.sleep(61 - datetime.now(UTC).second)
    rate_limit_set(api_key=api_key, tokens_per_minute=None, requests_per_minute=100_000)
    token_quota_set(api_key=api_key, limit_tokens=10**9, mode=LimitMode.HARD)  # reserves each bound
    assert _statuses(cluster, secret, body) == [200] * ROUNDS  # every worker caches it, with limits

    model_update(model=model, input_price_per_mtok=Decimal(1_000_000), output_price_per_mtok=Decimal(1_000_000))
    costs = {wait_for_usage_event(_post(cluster, secret, body).headers["x-request-id"]).cost_usd for _ in range(ROUNDS)}
    assert costs == {Decimal(19)}  # the new price from the first request on: 19 tokens at $1 each
    rate_limit_set(api_key=api_key, tokens_per_minute=None, requests_per_minute=3 * ROUNDS)
    answers = [_post(cluster, secret, body) for _ in range(ROUNDS)]
    assert [answer.status_code for answer in answers] == [200] * ROUNDS  # the 36th of the minute fits
    assert _post(cluster, secret, body).status_code == 429  # the 37th does not

    report = {limit["type"]: limit for limit in _get(cluster, "/key", secret).json()["limits"]}
    assert report["rpm"]["used"] == 3 * ROUNDS  # never counted twice, though 3 workers re-admitted
    for answer in answers:  # stored once settled
        wait_for_usage_event(answer.headers["x-request-id"])
    report = {limit["type"]: limit for limit in _get(cluster, "/key", secret).json()["limits"]}
    events = ApiKey.objects.get(pk=api_key.pk).usage_events.filter(status_code=200)
    assert report["token_quota"]["used"] == sum(events.values_list("total_tokens", flat=True)) == 48 * 19
    # every bound reserved was given back or settled to the real usage


@pytest.mark.django_db(transaction=True)
def test_a_warm_key_costs_no_sql_and_a_change_costs_one_reload():
    mock_provider_ensure()
    _, api_key, secret = gateway_create(resource_group=ResourceGroupFactory(), name="warm")
    proxy = InProcessGateway()
    queries: list[str] = []

    def record(execute, sql, params, many, context):
        queries.append(sql)
        return execute(sql, params, many, context)

    def config_reads() -> list[str]:
        tables = ('"keys_apikey"', '"gateway_gateway"', '"gateway_model"', '"gateway_provider"', '"quotas_')
        return [q for q in queries if q.lstrip().upper().startswith("SELECT") and any(t in q for t in tables)]

    try:
        # the data plane's database work runs on asgiref's one thread: count what it sends
        proxy._run(sync_to_async(lambda: connection.execute_wrappers.append(record), thread_sensitive=True)())
        assert proxy.chat(secret, **CHAT).status_code == 200
        assert config_reads()  # cold: the key, its limits and the catalog are loaded
        queries.clear()
        assert [proxy.chat(secret, **CHAT).status_code for _ in range(50)] == [200] * 50
        assert config_reads() == []  # warm: 50 requests, no query for the key, limits or models

        api_key_revoke(api_key=ApiKey.objects.get(pk=api_key.pk))
        assert proxy.chat(secret, **CHAT).status_code == 401
        assert config_reads()  # the change was seen and loaded before the request was answered
    finally:
        proxy.close()
