"""The usage dashboard (SPEC §7): totals, series and top tables equal the usage events of the
scope the URL names; another group's gateway is a 404; the budget burn forecasts the date the
budget runs out at the current rate; ranges are UTC and shareable."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine

from gateway.models import Role
from gateway.setup import gateway_create
from keys.services import api_key_create
from quotas.models import RefreshPeriod
from quotas.services import spend_budget_create
from tests.factories import MembershipFactory, ResourceGroupFactory, UsageEventFactory, UserFactory
from usage.dashboard import forecast_runs_out, time_range_for
from usage.jobs import rollup_usage

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 11, 0, 0, tzinfo=UTC)  # day 10 of November has just ended


def _stat(body: str, name: str) -> str:
    match = re.search(rf'data-stat="{name}"[^>]*>([^<]+)<', body)
    assert match, name
    return match.group(1)


def _charts(body: str) -> dict:
    match = re.search(r'<script id="usage-charts" type="application/json">(.*?)</script>', body, re.S)
    assert match
    return json.loads(match.group(1))


@pytest.fixture
def setup(client):
    group, other = ResourceGroupFactory(name="support"), ResourceGroupFactory(name="other")
    auditor = UserFactory()
    MembershipFactory(user=auditor, resource_group=group, role=Role.AUDITOR)
    gateway, key, _ = gateway_create(resource_group=group, name="helpdesk")
    batch, _ = api_key_create(gateway=gateway, name="batch")
    other_gateway, other_key, _ = gateway_create(resource_group=other, name="not-yours")
    client.force_login(auditor)
    return client, gateway, key, batch, other_gateway, other_key


def test_the_gateway_dashboard_adds_up_its_events_per_day(setup):
    client, gateway, key, batch, _other_gateway, other_key = setup
    day = datetime(2026, 11, 9, 10, tzinfo=UTC)
    UsageEventFactory(
        api_key=key,
        created_at=day,
        model_requested="gpt-4o-mini",
        total_tokens=1000,
        cost_usd=Decimal("0.25"),
        latency_ms=120,
    )
    UsageEventFactory(
        api_key=batch,
        created_at=day + timedelta(days=1),
        model_requested="claude",
        total_tokens=500,
        cost_usd=Decimal("1.5"),
        latency_ms=480,
    )
    UsageEventFactory(
        api_key=batch,
        created_at=day + timedelta(days=1),
        model_requested="claude",
        status_code=429,
        total_tokens=0,
        latency_ms=3,
    )
    UsageEventFactory(api_key=other_key, created_at=day, total_tokens=9999, cost_usd=Decimal(99))
    rollup_usage(NOW)  # half read from rollups; the next one arrives after the job
    UsageEventFactory(
        api_key=key,
        created_at=NOW - timedelta(minutes=5),
        model_requested="gpt-4o-mini",
        total_tokens=10,
        cost_usd=Decimal("0.0001"),
        latency_ms=90,
    )

    with time_machine.travel(NOW - timedelta(minutes=1), tick=False):
        body = client.get(f"/usage/?gateway={gateway.pk}&range=7d").content.decode()

    assert _stat(body, "requests") == "4"
    assert _stat(body, "cost") == "$1.7501"
    assert _stat(body, "error-rate") == "25.0%"
    charts = _charts(body)
    assert charts["labels"] == [
        "2026-11-04",
        "2026-11-05",
        "2026-11-06",
        "2026-11-07",
        "2026-11-08",
        "2026-11-09",
        "2026-11-10",
    ]
    assert charts["requests"] == [0, 0, 0, 0, 0, 1, 2] and charts["errors"] == [0, 0, 0, 0, 0, 0, 1]
    assert [Decimal(usd) for usd in charts["spend"][-2:]] == [Decimal("0.25"), Decimal("1.5001")]
    assert Decimal(charts["spend_total"][-1]) == Decimal("1.7501")
    # Costliest first; the other group's model and key are nowhere.
    assert body.index(">claude<") < body.index(">gpt-4o-mini<")
    assert "not-yours" not in body and "$99" not in body


def test_another_groups_gateway_is_a_404_and_a_key_dashboard_narrows_to_the_key(setup):
    client, gateway, key, batch, other_gateway, _ = setup
    UsageEventFactory(api_key=key, created_at=NOW - timedelta(hours=1), total_tokens=10, cost_usd=Decimal("0.5"))
    UsageEventFactory(api_key=batch, created_at=NOW - timedelta(hours=1), total_tokens=10, cost_usd=Decimal("2"))

    with time_machine.travel(NOW, tick=False):
        assert client.get(f"/usage/?gateway={other_gateway.pk}").status_code == 404
        assert client.get("/usage/?gateway=abc").status_code == 404
        body = client.get(f"/usage/?api_key={batch.pk}&range=24h").content.decode()

    assert _stat(body, "cost") == "$2.00" and "API key batch" in body
    assert len(_charts(body)["labels"]) == 24  # hourly buckets


def test_the_budget_burn_forecasts_when_the_budget_runs_out(setup):
    client, _gateway, _key, batch, _, _ = setup
    with time_machine.travel(datetime(2026, 11, 1, tzinfo=UTC), tick=False):
        spend_budget_create(api_key=batch, limit_usd=Decimal(10), refresh_period=RefreshPeriod.MONTHLY)
    # $4 over the first 10 days of November: $0.40 a day, $6 left lasts 15 more days.
    UsageEventFactory(api_key=batch, created_at=datetime(2026, 11, 3, tzinfo=UTC), total_tokens=10, cost_usd=Decimal(4))

    with time_machine.travel(NOW, tick=False):
        body = client.get(f"/usage/?api_key={batch.pk}").content.decode()

    assert "$4.00 / $10.00 spent · monthly" in body
    assert "At $0.40 a day, the budget runs out on <strong>2026-11-26 00:00 UTC</strong>" in body


def test_a_slow_burn_lasts_until_the_window_resets():
    since = datetime(2026, 11, 1, tzinfo=UTC)
    assert forecast_runs_out(spent=Decimal(1), limit=Decimal(10), since=since, now=NOW) == NOW + timedelta(days=90)
    assert forecast_runs_out(spent=Decimal(0), limit=Decimal(10), since=since, now=NOW) is None
    assert forecast_runs_out(spent=Decimal(10), limit=Decimal(10), since=since, now=NOW) == NOW


def test_custom_ranges_are_whole_utc_days_and_bad_ones_say_why():
    custom = time_range_for({"since": "2026-11-01", "until": "2026-11-02"}, NOW)
    assert (custom.since, custom.until, custom.bucket) == (
        datetime(2026, 11, 1, tzinfo=UTC),
        datetime(2026, 11, 3, tzinfo=UTC),
        "hour",
    )
    backwards = time_range_for({"since": "2026-11-05", "until": "2026-11-02"}, NOW)
    assert backwards.key == "7d" and "before the start" in backwards.error
    assert "YYYY-MM-DD" in time_range_for({"since": "yesterday"}, NOW).error
