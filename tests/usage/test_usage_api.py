"""Usage events (list with filters, cursor pages and CSV; one event), usage aggregates by hour and
day, and the read-only audit trail with its visibility by role, in the management API (SPEC §5, §7)."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.test import AsyncClient
from rest_framework.test import APIClient

from core.models import AuditEvent
from gateway.models import Role
from gateway.setup import gateway_create
from keys.services import api_key_create, api_token_create
from tests.factories import MembershipFactory, ResourceGroupFactory, UsageEventFactory, UserFactory
from tests.support.people import api_client_as, member_of
from usage.models import UsageEvent
from usage.rollups import insert_events

pytestmark = pytest.mark.django_db

EVENTS = "/api/v1/usage-events"
AGGREGATES = "/api/v1/usage/aggregates"
AUDIT = "/api/v1/audit-events"
DAY_ONE = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
DAY_TWO = datetime(2026, 11, 2, 14, 5, tzinfo=UTC)


@pytest.fixture
def gateway(group):
    gateway, _, _ = gateway_create(resource_group=group, name="prod", key_name="first")
    return gateway


@pytest.fixture
def api_key(gateway):
    return gateway.api_keys.get()


@pytest.fixture
def developer(group) -> APIClient:
    """A developer of the group: the least role that reads usage (SPEC §1)."""
    return api_client_as(member_of(group, Role.DEVELOPER))


def event(api_key, **fields) -> UsageEvent:
    return UsageEventFactory(api_key=api_key, **fields)


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def csv_rows(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


# Usage events: visibility -------------------------------------------------------------------


def test_the_list_has_the_events_of_the_users_groups_and_none_of_others(api_key, developer):
    mine = event(api_key)
    _, elsewhere_key, _ = gateway_create(resource_group=ResourceGroupFactory(), name="other", key_name="k")
    event(elsewhere_key)

    assert ids(developer.get(EVENTS)) == [mine.pk]


def test_a_non_member_gets_403_on_the_list_and_404_on_an_event_of_another_group(api_key):
    hidden = event(api_key)
    outsider = api_client_as(UserFactory())

    assert outsider.get(EVENTS).status_code == 403
    assert outsider.get(f"{EVENTS}/{hidden.pk}").status_code == 404


def test_one_event_shows_every_field_with_the_cost_as_an_exact_decimal_string(api_key, developer):
    shown = event(
        api_key,
        created_at=DAY_ONE,
        total_tokens=1500,
        input_tokens=1200,
        cached_input_tokens=1024,
        output_tokens=300,
        cost_usd=Decimal("0.000258"),
        status_code=200,
        stream=True,
    )

    response = developer.get(f"{EVENTS}/{shown.pk}")

    assert response.status_code == 200
    body = response.json()
    assert body["cost_usd"] == "0.0002580000"
    assert body["created_at"] == "2026-11-01T09:30:00Z"
    assert body["api_key"] == api_key.pk
    assert body["gateway"] == api_key.gateway_id
    assert body["resource_group"] == api_key.gateway.resource_group_id
    assert (body["input_tokens"], body["cached_input_tokens"], body["output_tokens"]) == (1200, 1024, 300)
    assert developer.get(f"{EVENTS}/999999").status_code == 404


def test_a_personal_api_token_reads_the_events(group, api_key):
    shown = event(api_key)
    _, secret = api_token_create(user=member_of(group, Role.AUDITOR), name="ci")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")

    assert ids(client.get(EVENTS)) == [shown.pk]
    assert APIClient().get(EVENTS).status_code in (401, 403)


def test_usage_events_cannot_be_written(api_key, developer):
    shown = event(api_key)

    assert developer.post(EVENTS, {}, format="json").status_code == 405
    assert developer.delete(f"{EVENTS}/{shown.pk}").status_code == 405


# Usage events: filters ----------------------------------------------------------------------


def test_each_filter_narrows_the_list(group, gateway, api_key, developer):
    second_key, _ = api_key_create(gateway=gateway, name="second")
    staging, staging_key, _ = gateway_create(resource_group=group, name="staging", key_name="stage")
    ok = event(api_key, created_at=DAY_ONE, model_requested="mock/echo", status_code=200)
    limited = event(api_key, created_at=DAY_ONE + timedelta(hours=1), status_code=429, error_code="rate_limited")
    failed = event(second_key, created_at=DAY_TWO, model_requested="openai/gpt-4o", status_code=502)
    staged = event(staging_key, created_at=DAY_TWO + timedelta(hours=1), model_requested="openai/gpt-4o")

    assert set(ids(developer.get(EVENTS, {"gateway": staging.pk}))) == {staged.pk}
    assert set(ids(developer.get(EVENTS, {"api_key": second_key.pk}))) == {failed.pk}
    assert set(ids(developer.get(EVENTS, {"resource_group": group.pk}))) == {ok.pk, limited.pk, failed.pk, staged.pk}
    assert set(ids(developer.get(EVENTS, {"model": "openai/gpt-4o"}))) == {failed.pk, staged.pk}
    assert set(ids(developer.get(EVENTS, {"status": "success"}))) == {ok.pk, staged.pk}
    assert set(ids(developer.get(EVENTS, {"status": "error"}))) == {limited.pk, failed.pk}
    assert set(ids(developer.get(EVENTS, {"status": "429"}))) == {limited.pk}
    assert set(ids(developer.get(EVENTS, {"error_code": "rate_limited"}))) == {limited.pk}
    assert set(ids(developer.get(EVENTS, {"gateway": gateway.pk, "status": "error"}))) == {limited.pk, failed.pk}


def test_since_is_inclusive_until_is_exclusive_and_a_naive_time_is_utc(api_key, developer):
    before = event(api_key, created_at=DAY_ONE - timedelta(seconds=1))
    at_start = event(api_key, created_at=DAY_ONE)
    at_end = event(api_key, created_at=DAY_TWO)

    window = {"since": "2026-11-01T09:30:00Z", "until": "2026-11-02T14:05:00+00:00"}
    assert ids(developer.get(EVENTS, window)) == [at_start.pk]
    assert ids(developer.get(EVENTS, {"since": "2026-11-01T09:30:00"})) == [at_end.pk, at_start.pk]
    assert ids(developer.get(EVENTS, {"until": "2026-11-01T10:30:00+01:00"})) == [before.pk]


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("gateway", "abc"),
        ("api_key", "-1"),
        ("resource_group", "1.5"),
        ("gateway", "²"),
        ("gateway", "99999999999999999999"),
        ("status", "failed"),
        ("status", "700"),
        ("since", "yesterday"),
        ("until", "2026-13-01T00:00:00Z"),
    ],
)
def test_an_invalid_filter_is_a_400_naming_it(developer, parameter, value):
    response = developer.get(EVENTS, {parameter: value})

    assert response.status_code == 400
    assert list(response.json()) == [parameter]


# Usage events: pages ------------------------------------------------------------------------


def test_cursor_pages_walk_every_event_once_newest_first(api_key, developer):
    times = [DAY_ONE, DAY_ONE, DAY_ONE, DAY_ONE + timedelta(minutes=1), DAY_TWO, DAY_TWO, DAY_ONE - timedelta(days=1)]
    events = [event(api_key, created_at=at) for at in times]
    expected = [e.pk for e in sorted(events, key=lambda e: (e.created_at, e.pk), reverse=True)]

    seen: list[int] = []
    url: str | None = f"{EVENTS}?page_size=3"
    pages = 0
    while url:
        response = developer.get(url)
        assert response.status_code == 200
        body = response.json()
        assert len(body["results"]) <= 3
        seen += [row["id"] for row in body["results"]]
        url = body["next"]
        pages += 1

    assert seen == expected
    assert pages == 3


def test_a_page_has_50_events_by_default_and_at_most_500(api_key, developer):
    insert_events(UsageEventFactory.build_batch(501, api_key=api_key))

    assert len(developer.get(EVENTS).json()["results"]) == 50
    assert len(developer.get(EVENTS, {"page_size": 2}).json()["results"]) == 2
    assert len(developer.get(EVENTS, {"page_size": 10_000}).json()["results"]) == 500


def test_an_invalid_cursor_is_a_404(developer):
    assert developer.get(EVENTS, {"cursor": "not-a-cursor"}).status_code == 404


# Usage events: CSV --------------------------------------------------------------------------


def test_the_csv_has_a_header_and_every_matching_event_without_pages(api_key, developer):
    insert_events(UsageEventFactory.build_batch(60, api_key=api_key, created_at=DAY_ONE))
    event(api_key, created_at=DAY_TWO, status_code=500)

    response = developer.get(EVENTS, {"format": "csv", "status": "success"})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == 'attachment; filename="usage-events.csv"'
    rows = csv_rows(response)
    header = rows[0]
    assert header[:3] == ["id", "request_id", "created_at"]
    assert "cost_usd" in header and "total_tokens" in header
    assert len(rows) == 61
    assert {row[header.index("status_code")] for row in rows[1:]} == {"200"}
    assert {row[header.index("created_at")] for row in rows[1:]} == {"2026-11-01T09:30:00Z"}


def test_the_csv_keeps_the_cost_exact_and_defuses_spreadsheet_formulas(api_key, developer):
    event(
        api_key,
        cost_usd=Decimal("0.1234567891"),
        model_requested='=HYPERLINK("http://evil")',
        error_code="+1",
        api_key_name="@sum",
        upstream_request_id="-2",
        provider="\tx",
        model_served="\rx",
    )

    response = developer.get(EVENTS, HTTP_ACCEPT="text/csv")

    header, row = csv_rows(response)
    cell = dict(zip(header, row, strict=True))
    assert cell["cost_usd"] == "0.1234567891"
    assert cell["model_requested"] == '\'=HYPERLINK("http://evil")'
    assert cell["error_code"] == "'+1"
    assert cell["api_key_name"] == "'@sum"
    assert cell["upstream_request_id"] == "'-2"
    assert cell["provider"] == "'\tx"
    assert cell["model_served"] == "'\rx"
    assert cell["total_tokens"] == "100"
    assert cell["stream"] == "false"


def test_the_csv_has_only_the_users_events(api_key):
    event(api_key)
    elsewhere = api_client_as(member_of(ResourceGroupFactory(), Role.DEVELOPER))

    assert len(csv_rows(elsewhere.get(EVENTS, {"format": "csv"}))) == 1


def test_an_invalid_filter_of_a_csv_export_is_a_json_400(developer):
    response = developer.get(EVENTS, {"format": "csv", "since": "soon"})

    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    assert list(response.json()) == ["since"]


def test_the_csv_streams_from_an_async_iterator_under_asgi(group, api_key):
    event(api_key, cost_usd=Decimal("1.5"))
    _, secret = api_token_create(user=member_of(group, Role.DEVELOPER), name="ci")

    async def download():
        response = await AsyncClient().get(EVENTS, {"format": "csv"}, headers={"Authorization": f"Bearer {secret}"})
        assert response.is_async
        return b"".join([part async for part in response.streaming_content]).decode()

    from asgiref.sync import async_to_sync

    rows = list(csv.reader(io.StringIO(async_to_sync(download)())))
    assert len(rows) == 2
    assert rows[1][rows[0].index("cost_usd")] == "1.5000000000"


# Aggregates ---------------------------------------------------------------------------------


@pytest.fixture
def spread(gateway, api_key):
    """Events on two UTC days and three hours, two models, two keys, exact costs."""
    second_key, _ = api_key_create(gateway=gateway, name="second")
    rows = [
        (api_key, DAY_ONE, "mock/echo", 200, 100, Decimal("0.0000000001")),
        (api_key, DAY_ONE + timedelta(minutes=20), "mock/echo", 429, 0, Decimal("0")),
        (second_key, DAY_ONE + timedelta(hours=2), "openai/gpt-4o", 200, 333, Decimal("1.2345678901")),
        (api_key, DAY_TWO, "mock/echo", 200, 7, Decimal("0.1")),
        (second_key, DAY_TWO + timedelta(minutes=5), "openai/gpt-4o", 502, 0, Decimal("0.2")),
    ]
    return [
        event(key, created_at=at, model_requested=model, status_code=status, total_tokens=tokens, cost_usd=cost)
        for key, at, model, status, tokens, cost in rows
    ]


def expected_buckets(events, *, start_of, key_of) -> dict:
    sums: dict = defaultdict(lambda: defaultdict(int))
    for e in events:
        row = sums[(start_of(e.created_at), key_of(e))]
        row["requests"] += 1
        row["errors"] += e.status_code >= 400
        for field in ("input_tokens", "output_tokens", "total_tokens", "cached_input_tokens"):
            row[field] += getattr(e, field)
        row["cost_usd"] += e.cost_usd
    return {key: {**row, "cost_usd": f"{row['cost_usd']:.10f}"} for key, row in sums.items()}


def buckets(response) -> dict:
    assert response.status_code == 200, response.content
    return {
        (row["start"], row["key"]): {
            field: row[field]
            for field in ("requests", "errors", "input_tokens", "output_tokens", "total_tokens", "cached_input_tokens")
        }
        | {"cost_usd": row["cost_usd"]}
        for row in response.json()["results"]
    }


def utc_text(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def test_daily_aggregates_per_model_are_the_sums_of_the_events(spread, developer):
    with time_machine.travel(DAY_TWO + timedelta(days=1), tick=False):
        response = developer.get(AGGREGATES, {"bucket": "day", "group_by": "model"})

    day = lambda at: utc_text(at.replace(hour=0, minute=0, second=0, microsecond=0))  # noqa: E731
    assert buckets(response) == expected_buckets(spread, start_of=day, key_of=lambda e: e.model_requested)
    body = response.json()
    assert (body["bucket"], body["group_by"]) == ("day", "model")
    assert [(row["start"], row["key"]) for row in body["results"]] == [
        ("2026-11-01T00:00:00Z", "mock/echo"),
        ("2026-11-01T00:00:00Z", "openai/gpt-4o"),
        ("2026-11-02T00:00:00Z", "mock/echo"),
        ("2026-11-02T00:00:00Z", "openai/gpt-4o"),
    ]
    first_day_model = body["results"][1]
    assert first_day_model["cost_usd"] == "1.2345678901"


def test_hourly_aggregates_without_group_by_and_per_api_key(spread, developer, api_key):
    window = {"since": "2026-11-01T00:00:00Z", "until": "2026-11-03T00:00:00Z", "bucket": "hour"}
    hour = lambda at: utc_text(at.replace(minute=0, second=0, microsecond=0))  # noqa: E731

    overall = developer.get(AGGREGATES, window)
    per_key = developer.get(AGGREGATES, {**window, "group_by": "api_key"})

    assert buckets(overall) == expected_buckets(spread, start_of=hour, key_of=lambda e: None)
    assert buckets(per_key) == expected_buckets(spread, start_of=hour, key_of=lambda e: e.api_key_id)
    first_hour = overall.json()["results"][0]
    assert first_hour == {
        "start": "2026-11-01T09:00:00Z",
        "key": None,
        "requests": 2,
        "errors": 1,
        "input_tokens": 50,
        "cached_input_tokens": 0,
        "cache_write_tokens": 0,
        "output_tokens": 50,
        "reasoning_tokens": 0,
        "total_tokens": 100,
        "cost_usd": "0.0000000001",
    }


def test_aggregates_take_the_event_filters_and_default_to_the_last_7_days(spread, developer, api_key):
    window = {"since": "2026-11-01T00:00:00Z", "api_key": api_key.pk, "status": "success"}
    filtered = developer.get(AGGREGATES, window).json()["results"]
    assert [(row["start"], row["requests"], row["cost_usd"]) for row in filtered] == [
        ("2026-11-01T00:00:00Z", 1, "0.0000000001"),
        ("2026-11-02T00:00:00Z", 1, "0.1000000000"),
    ]

    with time_machine.travel(DAY_TWO + timedelta(days=7, minutes=-1), tick=False):
        recent = developer.get(AGGREGATES).json()
    assert [row["start"] for row in recent["results"]] == ["2026-11-02T00:00:00Z"]
    assert recent["since"] == "2026-11-02T14:04:00Z"


def test_aggregates_have_only_the_users_events(spread):
    elsewhere = api_client_as(member_of(ResourceGroupFactory(), Role.AUDITOR))

    assert elsewhere.get(AGGREGATES, {"since": "2026-01-01T00:00:00Z"}).json()["results"] == []


@pytest.mark.parametrize(("parameter", "value"), [("bucket", "week"), ("group_by", "provider"), ("gateway", "x")])
def test_an_invalid_aggregate_parameter_is_a_400_naming_it(developer, parameter, value):
    response = developer.get(AGGREGATES, {parameter: value})

    assert response.status_code == 400
    assert list(response.json()) == [parameter]


# Audit events -------------------------------------------------------------------------------


def audit_event(group, **fields) -> AuditEvent:
    defaults = {"action": "gateway.update", "target_type": "gateway", "target_id": "1", "target_name": "prod"}
    return AuditEvent.objects.create(resource_group=group, **(defaults | fields))


def audit_ids(response) -> set[int]:
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


@pytest.mark.parametrize(
    ("role", "sees"),
    [(Role.OWNER, True), (Role.ADMIN, True), (Role.AUDITOR, True), (Role.DEVELOPER, False), (Role.VIEWER, False)],
)
def test_owners_admins_and_auditors_read_their_groups_trail_and_developers_and_viewers_get_403(group, role, sees):
    mine = audit_event(group)
    elsewhere = audit_event(ResourceGroupFactory())
    audit_event(None, action="provider.create", target_type="provider")
    client = api_client_as(member_of(group, role))

    if sees:
        assert audit_ids(client.get(AUDIT)) == {mine.pk}
    else:
        assert client.get(AUDIT).status_code == 403
    assert client.get(f"{AUDIT}/{mine.pk}").status_code == (200 if sees else 403)
    assert client.get(f"{AUDIT}/{elsewhere.pk}").status_code == 404


def test_instance_wide_events_are_for_platform_admins_and_superusers_only(group):
    instance_wide = audit_event(None, action="model.update", target_type="model")
    other = audit_event(ResourceGroupFactory())
    auditor = api_client_as(member_of(group, Role.AUDITOR))
    platform_admin = api_client_as(UserFactory(is_staff=True))
    superuser = api_client_as(UserFactory(is_superuser=True))
    outsider = api_client_as(UserFactory())

    assert audit_ids(auditor.get(AUDIT)) == set()
    assert auditor.get(f"{AUDIT}/{instance_wide.pk}").status_code == 404
    assert auditor.get(f"{AUDIT}/{other.pk}").status_code == 404
    assert platform_admin.get(f"{AUDIT}/{instance_wide.pk}").json()["action"] == "model.update"
    assert {instance_wide.pk, other.pk} <= audit_ids(platform_admin.get(AUDIT))
    assert {instance_wide.pk, other.pk} <= audit_ids(superuser.get(AUDIT))
    assert outsider.get(AUDIT).status_code == 403
    assert outsider.get(f"{AUDIT}/{instance_wide.pk}").status_code == 404


def test_an_audit_event_shows_who_when_what_before_and_after(group):
    actor = UserFactory(username="ada")
    shown = audit_event(
        group,
        actor=actor,
        actor_name="ada",
        via="api",
        created_at=DAY_ONE,
        before={"limit_usd": "10"},
        after={"limit_usd": "50"},
        ip_address="203.0.113.9",
    )

    body = api_client_as(member_of(group, Role.AUDITOR)).get(f"{AUDIT}/{shown.pk}").json()

    assert body == {
        "id": shown.pk,
        "created_at": "2026-11-01T09:30:00Z",
        "actor": actor.pk,
        "actor_name": "ada",
        "via": "api",
        "action": "gateway.update",
        "target_type": "gateway",
        "target_id": "1",
        "target_name": "prod",
        "resource_group": group.pk,
        "before": {"limit_usd": "10"},
        "after": {"limit_usd": "50"},
        "ip_address": "203.0.113.9",
    }


def test_each_audit_filter_narrows_the_trail(group):
    second_group = ResourceGroupFactory()
    actor = UserFactory()
    auditor = UserFactory()
    MembershipFactory(user=auditor, resource_group=group, role=Role.AUDITOR)
    MembershipFactory(user=auditor, resource_group=second_group, role=Role.OWNER)
    by_actor = audit_event(group, actor=actor, created_at=DAY_ONE)
    created = audit_event(group, action="api_key.create", target_type="api_key", target_id="7", created_at=DAY_TWO)
    elsewhere = audit_event(second_group, created_at=DAY_TWO + timedelta(hours=1))
    client = api_client_as(auditor)

    assert audit_ids(client.get(AUDIT, {"resource_group": second_group.pk})) == {elsewhere.pk}
    assert audit_ids(client.get(AUDIT, {"actor": actor.pk})) == {by_actor.pk}
    assert audit_ids(client.get(AUDIT, {"action": "api_key.create"})) == {created.pk}
    assert audit_ids(client.get(AUDIT, {"target_type": "api_key", "target_id": "7"})) == {created.pk}
    assert audit_ids(client.get(AUDIT, {"since": "2026-11-02T14:05:00Z", "until": "2026-11-02T15:05:00Z"})) == {
        created.pk
    }
    response = client.get(AUDIT, {"actor": "ada", "since": "nope"})
    assert response.status_code == 400
    assert set(response.json()) == {"actor", "since"}


def test_the_audit_trail_pages_newest_first(group):
    events = [audit_event(group, created_at=DAY_ONE + timedelta(minutes=i % 3)) for i in range(5)]
    client = api_client_as(member_of(group, Role.AUDITOR))
    expected = [e.pk for e in sorted(events, key=lambda e: (e.created_at, e.pk), reverse=True)]

    first = client.get(AUDIT, {"page_size": 2}).json()
    second = client.get(first["next"]).json()
    third = client.get(second["next"]).json()

    assert [row["id"] for row in first["results"] + second["results"] + third["results"]] == expected
    assert third["next"] is None


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_nobody_can_change_the_audit_trail(group, method):
    shown = audit_event(group)
    owner = api_client_as(member_of(group, Role.OWNER))

    assert getattr(owner, method)(AUDIT, {}, format="json").status_code == 405
    assert getattr(owner, method)(f"{AUDIT}/{shown.pk}", {}, format="json").status_code == 405
    assert AuditEvent.objects.filter(pk=shown.pk).exists()


# Query counts -------------------------------------------------------------------------------


def query_count(client, url: str, params: dict) -> int:
    """The queries of one request, by a fresh copy of the client's user (as each request has),
    so that the roles are read in every request counted."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    fresh = api_client_as(get_user_model().objects.get(pk=client.handler._force_user.pk))
    with CaptureQueriesContext(connection) as queries:
        assert fresh.get(url, params).status_code == 200
    return len(queries)


def test_the_lists_and_aggregates_read_a_fixed_number_of_queries_whatever_the_rows(group, api_key, developer):
    auditor = api_client_as(member_of(group, Role.AUDITOR))
    window = {"since": "2026-01-01T00:00:00Z", "group_by": "api_key"}
    event(api_key)
    audit_event(group)
    few = [
        query_count(developer, EVENTS, {}),
        query_count(auditor, AUDIT, {}),
        query_count(developer, AGGREGATES, window),
    ]

    insert_events(UsageEventFactory.build_batch(30, api_key=api_key))
    for _ in range(30):
        audit_event(group)
    many = [
        query_count(developer, EVENTS, {}),
        query_count(auditor, AUDIT, {}),
        query_count(developer, AGGREGATES, window),
    ]

    assert many == few
    # Lists: the user's roles, the page. Aggregates: the roles, the retention watermark, the dirty
    # hours, the hourly and daily rollups, the raw events.
    assert many == [2, 2, 6]


def test_aggregates_are_the_same_before_and_after_the_rollup_job_catches_up(group, api_key, developer):
    from usage.jobs import rollup_usage

    for hour in range(30):
        event(api_key, created_at=DAY_ONE + timedelta(hours=hour), cost_usd=Decimal("0.0000000001") * hour)
    params = {"since": "2026-01-01T00:00:00Z", "bucket": "day", "group_by": "model"}
    behind = developer.get(AGGREGATES, params).json()["results"]

    assert rollup_usage(DAY_ONE) == 30
    caught_up = developer.get(AGGREGATES, params).json()["results"]

    assert caught_up == behind
    assert [row["requests"] for row in caught_up] == [15, 15]
