"""Every request is a usage event, refusals included (SPEC §7), over real HTTP with the official
openai SDK: each kind of refusal that aigw answers itself is one usage event with its status and
error code, zero tokens and cost, no provider, the key, gateway and group where they are known
and the client's address, never the secret. A flood of refusals (unknown keys; a valid key
hammering its RPM) is counted exactly in a bounded number of rows: per key or client address,
error code and UTC minute, the first AIGW_REFUSAL_EVENTS_PER_MINUTE are one row each and the
rest one aggregate row whose `requests` says how many. A refusal of one group is another group's
404; one of no key is the platform admin's alone."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import openai
import pytest
from django.urls import reverse

from gateway.models import GatewayStatus
from gateway.services import gateway_update
from gateway.setup import gateway_create
from keys.models import ApiKey, ApiKeyStatus, SuspendedReason
from keys.services import api_key_create, api_key_revoke
from quotas.models import LimitMode
from quotas.services import rate_limit_set, token_quota_set
from tests.conftest import _server_env, _wait_until_server_is_quiet, wait_for_usage_event
from tests.factories import ResourceGroupFactory, UserFactory
from tests.support.live_server import LiveServer
from tests.support.people import api_client_as, member_of
from usage.models import UsageEvent

CHAT = {"model": "mock/echo", "messages": [{"role": "user", "content": "Hello there"}]}
PER_MINUTE = 60  # the shipped AIGW_REFUSAL_EVENTS_PER_MINUTE
_addresses = itertools.count(10)


def _client(server, secret: str, address: str | None = None) -> openai.OpenAI:
    headers = {"x-forwarded-for": address} if address else None
    return openai.OpenAI(base_url=server.v1, api_key=secret, max_retries=0, default_headers=headers)


def _refused(client: openai.OpenAI, **overrides) -> openai.APIStatusError:
    """Send one chat completion that must be refused; the SDK's error for it."""
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(**{**CHAT, **overrides})
    return caught.value


def _assert_refusal_event(error: openai.APIStatusError | httpx.Response, *, api_key: ApiKey | None, model=None):
    """The refusal `error` answered has exactly one usage event, saying what the answer said.
    `model`: the model it names, by default none for a request without a key (its body is not
    read) and the one asked for otherwise."""
    response = error if isinstance(error, httpx.Response) else error.response
    request_id = response.headers["x-request-id"]
    event = wait_for_usage_event(request_id)
    assert (event.status_code, event.error_code) == (response.status_code, response.json()["error"]["code"])
    if model is None:
        model = "" if api_key is None else "mock/echo"
    assert event.requests == 1 and event.endpoint == "chat.completions"
    assert (event.input_tokens, event.output_tokens, event.total_tokens, event.cost_usd) == (0, 0, 0, Decimal(0))
    assert (event.provider, event.model_served, event.upstream_request_id) == ("", "", "")
    assert event.model_requested == model
    assert event.client_address == "127.0.0.1"
    if api_key is None:
        assert (event.api_key_id, event.gateway_id, event.resource_group_id, event.api_key_name) == (None,) * 3 + ("",)
    else:
        assert (event.api_key_id, event.gateway_id) == (api_key.pk, api_key.gateway_id)
        assert event.resource_group_id == api_key.gateway.resource_group_id
        assert event.api_key_name == api_key.name
    return event


def test_each_kind_of_refusal_is_one_usage_event_with_its_status_and_code(live):
    group = ResourceGroupFactory()
    gateway, key, secret = gateway_create(resource_group=group, name="refusals")
    served = _client(live, secret).chat.completions.with_raw_response.create(**CHAT)
    served_event = wait_for_usage_event(served.headers["x-request-id"])

    missing = httpx.post(f"{live.v1}/chat/completions", json=CHAT)  # no key at all (the SDK needs one)
    assert missing.status_code == 401
    refusals = [_assert_refusal_event(missing, api_key=None)]
    error = _refused(_client(live, "aigw_not_a_key_at_all"))
    assert (error.status_code, error.body["code"]) == (401, "invalid_api_key")
    refusals.append(_assert_refusal_event(error, api_key=None))

    revoked, revoked_secret = api_key_create(gateway=gateway, name="revoked")
    api_key_revoke(api_key=revoked)
    expired, expired_secret = api_key_create(gateway=gateway, name="expired")
    ApiKey.objects.filter(pk=expired.pk).update(expires_at=datetime.now(UTC) - timedelta(minutes=1))
    suspended, suspended_secret = api_key_create(gateway=gateway, name="suspended")
    ApiKey.objects.filter(pk=suspended.pk).update(status=ApiKeyStatus.SUSPENDED, suspended_reason=SuspendedReason.ADMIN)
    for api_key, key_secret, status, code in (
        (revoked, revoked_secret, 401, "key_revoked"),
        (expired, expired_secret, 401, "key_expired"),
        (suspended, suspended_secret, 403, "key_suspended"),
    ):
        error = _refused(_client(live, key_secret))
        assert (error.status_code, error.body["code"]) == (status, code)
        refusals.append(_assert_refusal_event(error, api_key=api_key, model=""))  # refused before the body

    client = _client(live, secret)
    error = _refused(client, model="no/such-model")
    assert (error.status_code, error.body["code"]) == (404, "model_not_found")
    refusals.append(_assert_refusal_event(error, api_key=key, model="no/such-model"))
    error = _refused(client, messages=[])
    assert error.status_code == 400
    refusals.append(_assert_refusal_event(error, api_key=key))

    quota_key, quota_secret = api_key_create(gateway=gateway, name="quota")
    token_quota_set(limit_tokens=3, mode=LimitMode.HARD, api_key=quota_key)
    error = _refused(_client(live, quota_secret))
    assert error.status_code == 429
    refusals.append(_assert_refusal_event(error, api_key=quota_key))

    rpm_key, rpm_secret = api_key_create(gateway=gateway, name="rpm")
    rate_limit_set(tokens_per_minute=None, requests_per_minute=1, api_key=rpm_key)
    rpm_client = _client(live, rpm_secret)
    first = rpm_client.chat.completions.with_raw_response.create(**CHAT)
    wait_for_usage_event(first.headers["x-request-id"])
    error = _refused(rpm_client)
    assert error.status_code == 429
    refusals.append(_assert_refusal_event(error, api_key=rpm_key))

    gateway_update(gateway=gateway, status=GatewayStatus.DISABLED)
    error = _refused(client)
    assert (error.status_code, error.body["code"]) == (403, "gateway_disabled")
    refusals.append(_assert_refusal_event(error, api_key=key, model=""))

    # The secrets sent are nowhere in what was stored.
    stored = repr(list(UsageEvent.objects.values()))
    for sent in (secret, revoked_secret, expired_secret, suspended_secret, quota_secret, rpm_secret):
        assert sent not in stored
    # One event per request, and the served one is untouched.
    assert UsageEvent.objects.filter(request_id__in=[e.request_id for e in refusals]).count() == len(refusals) == 10
    served_event.refresh_from_db()
    assert served_event.status_code == 200 and served_event.total_tokens > 0


@pytest.fixture
def own_server(django_db_setup, django_db_blocker, transactional_db):
    """An aigw server of this test alone (so that the test can stop it, which queues the
    aggregates of the minute), trusting X-Forwarded-For from 127.0.0.1 so that the test plays
    clients at addresses of its own."""
    from gateway.services import mock_provider_ensure

    mock_provider_ensure()
    env = {
        **_server_env(),
        "AIGW_INVALID_KEY_LIMIT": "20",  # the shipped default
        "AIGW_TRUSTED_PROXIES": "127.0.0.1",
        "FORWARDED_ALLOW_IPS": "192.0.2.254",
    }
    server = LiveServer(env)
    yield server
    server.stop()
    _wait_until_server_is_quiet()


def _rows_per_minute(events) -> dict[tuple[str, datetime], list[UsageEvent]]:
    rows: dict[tuple[str, datetime], list[UsageEvent]] = defaultdict(list)
    for event in events:
        rows[(event.error_code, event.created_at.replace(second=0, microsecond=0))].append(event)
    return rows


def _assert_flood_counted(events, total: int) -> None:
    """`events` count `total` requests exactly, in at most PER_MINUTE single rows and one
    aggregate row per error code and UTC minute."""
    assert sum(event.requests for event in events) == total
    for (code, minute), rows in _rows_per_minute(events).items():
        singles = [row for row in rows if row.requests == 1]
        aggregates = [row for row in rows if row.request_id.startswith("agg_")]
        assert len(singles) <= PER_MINUTE, (code, minute, len(singles))
        assert len(aggregates) <= 1 and len(rows) == len(singles) + len(aggregates), (code, minute)
    assert any(event.requests > 1 for event in events), "a flood is aggregated"


def test_an_invalid_key_storm_is_counted_exactly_in_a_bounded_number_of_rows(own_server):
    address = f"198.51.100.{next(_addresses)}"
    statuses = defaultdict(int)
    client = _client(own_server, "aigw_storm_of_wrong_keys", address)
    for _ in range(500):
        statuses[_refused(client).status_code] += 1
    # 20 unknown keys (AIGW_INVALID_KEY_LIMIT), then the address is throttled.
    assert statuses == {401: 20, 429: 480}
    own_server.stop()  # its shutdown queues the minute's aggregates and writes them

    events = list(UsageEvent.objects.filter(client_address=address))
    _assert_flood_counted(events, 500)
    assert len(events) <= 2 * (20 + PER_MINUTE + 1)  # even if the storm spanned a minute's end
    assert {(e.status_code, e.error_code) for e in events} == {(401, "invalid_api_key"), (429, "rate_limit_exceeded")}
    assert sum(e.requests for e in events if e.status_code == 401) == 20
    assert all(e.api_key_id is None and e.resource_group_id is None for e in events)


def test_a_valid_key_hammering_its_rpm_is_counted_exactly_in_a_bounded_number_of_rows(own_server):
    gateway, key, secret = gateway_create(resource_group=ResourceGroupFactory(), name="hammer")
    rate_limit_set(tokens_per_minute=None, requests_per_minute=1, api_key=key)
    client = _client(own_server, secret, f"198.51.100.{next(_addresses)}")
    served = refused = 0
    for _ in range(300):
        try:
            client.chat.completions.create(**CHAT)
            served += 1
        except openai.RateLimitError:
            refused += 1
    assert served + refused == 300 and 1 <= served <= 2  # one per UTC minute the burst spans
    own_server.stop()

    events = list(UsageEvent.objects.filter(api_key=key, status_code=429))
    _assert_flood_counted(events, refused)
    assert len(events) <= 2 * (PER_MINUTE + 1)
    assert all(e.gateway_id == gateway.pk and e.error_code == "rate_limit_exceeded" for e in events)
    assert UsageEvent.objects.filter(api_key=key, status_code=200).count() == served


def test_a_refusal_is_another_groups_404_and_a_refusal_of_no_key_the_platform_admins_alone(live):
    mine, theirs = ResourceGroupFactory(), ResourceGroupFactory()
    _, their_key, their_secret = gateway_create(resource_group=theirs, name="theirs")
    theirs_refused = _refused(_client(live, their_secret), model="no/such-model")
    their_event = _assert_refusal_event(theirs_refused, api_key=their_key, model="no/such-model")
    unknown_event = _assert_refusal_event(_refused(_client(live, "aigw_nobody")), api_key=None)

    owner = api_client_as(member_of(mine, "owner"))
    their_owner = api_client_as(member_of(theirs, "owner"))
    platform_admin = api_client_as(UserFactory(is_staff=True))

    def status(client, event) -> int:
        return client.get(reverse("api-usage-event", args=[event.pk])).status_code

    assert status(owner, their_event) == 404
    assert status(their_owner, their_event) == 200
    assert status(owner, unknown_event) == status(their_owner, unknown_event) == 404
    assert status(platform_admin, unknown_event) == 200
    listed = {row["request_id"] for row in their_owner.get(reverse("api-usage-events")).json()["results"]}
    assert their_event.request_id in listed and unknown_event.request_id not in listed
    body = platform_admin.get(reverse("api-usage-event", args=[unknown_event.pk])).json()
    assert (body["api_key"], body["requests"], body["client_address"]) == (None, 1, "127.0.0.1")
