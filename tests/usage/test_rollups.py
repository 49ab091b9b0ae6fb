"""Usage rollups (SPEC §7): whatever the job has or has not caught up with, reading usage per
hour or day, split by key, model, gateway or group, equals adding up the raw events, including
events that arrive while a rollup job runs and late events for hours already purged."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.setup import gateway_create
from keys.services import api_key_create
from tests.factories import ResourceGroupFactory
from usage import jobs, rollups
from usage.models import (
    LATENCY_BOUNDS_MS,
    UsageEvent,
    UsageRetention,
    UsageRollup,
    UsageRollupDay,
    UsageRollupDirtyHour,
)
from usage.rollups import insert_events, latency_percentile, rollup_dirty_hours, usage_series

pytestmark = pytest.mark.django_db

START = datetime(2026, 11, 1, tzinfo=UTC)
MODELS = ("gpt-4o-mini", "claude-sonnet", "mock/echo")


@pytest.fixture
def keys():
    """Three API keys: two on one gateway of group A, one on a gateway of group B."""
    group_a, group_b = ResourceGroupFactory(name="a"), ResourceGroupFactory(name="b")
    gateway_a, key_a1, _ = gateway_create(resource_group=group_a, name="ga")
    key_a2, _ = api_key_create(gateway=gateway_a, name="second")
    _gateway_b, key_b, _ = gateway_create(resource_group=group_b, name="gb")
    return [key_a1, key_a2, key_b]


events_strategy = st.lists(
    st.tuples(
        st.integers(0, 3 * 24 * 3600 - 1),  # seconds after START
        st.integers(0, 2),  # key
        st.sampled_from(MODELS),
        st.integers(0, 5000),  # input tokens
        st.integers(0, 2000),  # output tokens
        st.integers(0, 10**8),  # cost in units of 1e-10 USD
        st.sampled_from([200, 200, 200, 400, 429, 500]),
        st.integers(0, 90_000),  # latency ms
        st.booleans(),  # run the rollup job after this event
    ),
    max_size=40,
)


def _event(keys, n, spec) -> UsageEvent:
    second, key, model, input_tokens, output_tokens, cost, status, latency, _ = spec
    api_key = keys[key]
    return UsageEvent(
        request_id=f"req_{n}",
        created_at=START + timedelta(seconds=second),
        resource_group_id=api_key.gateway.resource_group_id,
        gateway_id=api_key.gateway_id,
        api_key=api_key,
        api_key_name=api_key.name,
        model_requested=model,
        status_code=status,
        input_tokens=input_tokens,
        cached_input_tokens=input_tokens // 3,
        output_tokens=output_tokens,
        reasoning_tokens=output_tokens // 4,
        total_tokens=input_tokens + output_tokens,
        cost_usd=Decimal(cost).scaleb(-10),
        latency_ms=latency,
    )


def _expected(since, until, bucket, group_by, filters) -> dict:
    """Usage per (bucket start, key) added up in Python from the raw events."""
    column = rollups.GROUP_BY.get(group_by or "", None)
    totals: dict = defaultdict(lambda: defaultdict(int))
    for event in UsageEvent.objects.filter(created_at__gte=since, created_at__lt=until):
        if any(getattr(event, rollups.FILTERS[name]) != value for name, value in filters.items()):
            continue
        start = event.created_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        if bucket == "day":
            start = start.replace(hour=0)
        elif bucket == "range":
            start = since
        row = totals[(start, getattr(event, column) if column else None)]
        row["requests"] += 1
        row["errors"] += event.status_code >= 400
        for name in rollups.TOKEN_FIELDS:
            row[name] += getattr(event, name)
        row["cost_usd"] += event.cost_usd
        row["latency_ms_sum"] += event.latency_ms
        index = sum(1 for bound in LATENCY_BOUNDS_MS if event.latency_ms >= bound)
        row[f"latency_{index}"] += 1
    return {key: {name: value for name, value in row.items() if value} for key, row in totals.items()}


def _actual(points) -> dict:
    result = {}
    for point in points:
        row = {
            name: getattr(point, name)
            for name in ("requests", "errors", *rollups.TOKEN_FIELDS, "cost_usd", "latency_ms_sum")
        }
        row.update({f"latency_{i}": n for i, n in enumerate(point.latency_histogram) if n})
        result[(point.start, point.key)] = {name: value for name, value in row.items() if value}
    return result


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    specs=events_strategy,
    since_s=st.integers(-3600, 3 * 24 * 3600),
    length_s=st.integers(0, 3 * 24 * 3600 + 7200),
    bucket=st.sampled_from(rollups.BUCKETS),
    group_by=st.sampled_from([None, *rollups.GROUP_BY]),
    filter_name=st.sampled_from([None, *rollups.FILTERS]),
    batch=st.integers(1, 7),
)
def test_reading_usage_equals_adding_up_the_raw_events(
    keys, specs, since_s, length_s, bucket, group_by, filter_name, batch
):
    UsageRollup.objects.all().delete()
    UsageRollupDay.objects.all().delete()
    UsageRollupDirtyHour.objects.all().delete()
    UsageEvent.objects.all().delete()
    events = [_event(keys, n, spec) for n, spec in enumerate(specs)]
    for offset in range(0, len(events), batch):
        insert_events(events[offset : offset + batch])
        if any(spec[-1] for spec in specs[offset : offset + batch]):
            rollup_dirty_hours()
    since = START + timedelta(seconds=since_s)
    until = since + timedelta(seconds=length_s)
    values = {
        "api_key": keys[0].pk,
        "gateway": keys[0].gateway_id,
        "resource_group": keys[0].gateway.resource_group_id,
        "model": "gpt-4o-mini",
    }
    filters = {filter_name: values[filter_name]} if filter_name else {}

    expected = _expected(since, until, bucket, group_by, filters)
    assert (
        _actual(usage_series(since=since, until=until, bucket=bucket, group_by=group_by, filters=filters)) == expected
    )
    # Once the job has caught up, the answer is the same, now read from the rollups.
    rollup_dirty_hours()
    assert not UsageRollupDirtyHour.objects.exists()
    assert (
        _actual(usage_series(since=since, until=until, bucket=bucket, group_by=group_by, filters=filters)) == expected
    )


def test_an_event_that_arrives_while_the_job_recomputes_its_hour_is_not_missed(keys, monkeypatch):
    hour = START + timedelta(hours=5)
    insert_events([_event(keys, 1, (5 * 3600 + 10, 0, "gpt-4o-mini", 100, 50, 10**6, 200, 120, False))])
    real_recompute = rollups.recompute_hour

    def recompute_then_an_event_arrives(at):
        written = real_recompute(at)
        # Committed after the job read the hour's events, before it clears the hour.
        insert_events([_event(keys, 2, (5 * 3600 + 20, 0, "gpt-4o-mini", 7, 3, 10**5, 200, 80, False))])
        return written

    monkeypatch.setattr(rollups, "recompute_hour", recompute_then_an_event_arrives)
    rollup_dirty_hours()

    assert UsageRollupDirtyHour.objects.filter(hour=hour).exists()  # still dirty: it changed meanwhile
    monkeypatch.setattr(rollups, "recompute_hour", real_recompute)
    rollup_dirty_hours()
    rollup = UsageRollup.objects.get(hour=hour)
    assert (rollup.requests, rollup.total_tokens, rollup.cost_usd) == (2, 160, Decimal("0.00011"))
    points = usage_series(since=hour, until=hour + timedelta(hours=1))
    assert [(p.requests, p.total_tokens) for p in points] == [(2, 160)]


def test_a_late_event_for_a_purged_hour_is_added_to_its_rollup(keys):
    hour = START + timedelta(hours=2)
    insert_events([_event(keys, 1, (2 * 3600, 1, "mock/echo", 10, 5, 100, 200, 40, False))])
    rollup_dirty_hours()
    # Retention purged the raw events of that hour; the rollup is kept.
    UsageEvent.objects.all().delete()
    UsageRetention.objects.create(pk=1, purged_before=START + timedelta(days=1))

    insert_events([_event(keys, 2, (2 * 3600 + 59, 1, "mock/echo", 20, 10, 300, 500, 70, False))])
    rollup_dirty_hours()

    rollup = UsageRollup.objects.get(hour=hour)
    assert (rollup.requests, rollup.errors, rollup.total_tokens, rollup.cost_usd) == (2, 1, 45, Decimal("0.00000004"))
    assert not UsageEvent.objects.exists()  # the late event is in the rollup, not kept raw


def test_latency_percentiles_come_from_the_histogram():
    histogram = [0] * (len(LATENCY_BOUNDS_MS) + 1)
    histogram[4] = 50  # 100 to 200 ms
    histogram[6] = 50  # 300 to 500 ms
    assert latency_percentile(histogram, 0.5) == 200
    assert latency_percentile(histogram, 0.95) == 480
    assert latency_percentile([0] * len(histogram), 0.5) is None


def test_the_purge_keeps_the_rollups_and_the_answers(keys, settings, monkeypatch):
    settings.AIGW_USAGE_RETENTION_DAYS = 35
    now = START + timedelta(days=40, hours=3, minutes=20)
    specs = [
        (day * 86400 + 3600 * (day % 24), day % 3, MODELS[day % 3], 100 + day, 7, 10**7, 200, 150, False)
        for day in range(41)
    ]
    insert_events([_event(keys, n, spec) for n, spec in enumerate(specs)])
    everything = {"since": START, "until": now, "bucket": "day", "group_by": "model"}
    before = _actual(usage_series(**everything))

    deleted = jobs.purge_usage_events(now)

    cutoff = START + timedelta(days=5, hours=3)  # 35 days before now, at the start of its hour
    assert deleted == 5  # days 0 to 4; day 5's event is at 05:00 UTC, after the cutoff
    assert not UsageEvent.objects.filter(created_at__lt=cutoff).exists()
    assert UsageEvent.objects.filter(created_at__gte=cutoff).count() == 41 - deleted
    assert UsageRetention.objects.get(pk=1).purged_before == cutoff
    assert _actual(usage_series(**everything)) == before


def test_the_purge_waits_for_hours_that_are_not_rolled_up(keys, settings, monkeypatch):
    settings.AIGW_USAGE_RETENTION_DAYS = 35
    insert_events([_event(keys, 1, (3600, 0, "mock/echo", 10, 5, 100, 200, 40, False))])
    monkeypatch.setattr(jobs, "rollup_usage", lambda now: 0)  # the rollup job is behind

    assert jobs.purge_usage_events(START + timedelta(days=40)) == 0

    assert UsageEvent.objects.count() == 1
    assert not UsageRetention.objects.filter(purged_before__isnull=False).exists()


def test_no_retention_keeps_every_event(keys, settings):
    settings.AIGW_USAGE_RETENTION_DAYS = 0
    insert_events([_event(keys, 1, (3600, 0, "mock/echo", 10, 5, 100, 200, 40, False))])
    assert jobs.purge_usage_events(START + timedelta(days=4000)) == 0
    assert UsageEvent.objects.count() == 1


def test_the_rollup_and_purge_jobs_are_scheduled_and_run_by_the_embedded_runner(keys):
    from django_celery_beat.models import PeriodicTask

    import usage.tasks  # noqa: F401  (registers the tasks)
    from config.celery import app
    from quotas.jobs import run_all

    schedule = {t.name: t for t in PeriodicTask.objects.filter(name__startswith="usage.")}
    assert set(schedule) == {"usage.rollup_usage", "usage.purge_usage_events"}
    assert all(task.enabled and task.task in app.tasks for task in schedule.values())
    assert schedule["usage.rollup_usage"].interval.every == 60

    insert_events([_event(keys, 1, (3600, 0, "mock/echo", 10, 5, 100, 200, 40, False))])
    results = run_all(START + timedelta(hours=2))

    assert results["rollup_usage"] == 1 and results["purge_usage_events"] == 0
    assert UsageRollup.objects.get().requests == 1


def test_a_day_with_an_hour_not_rolled_up_again_is_read_from_hours_and_raw_events(keys):
    """Day rollups only serve days whose hours are all rolled up: a day that gets new events
    after its rollup is read from its clean hours and the raw events of the dirty one."""
    insert_events([_event(keys, 1, (10 * 3600, 0, "mock/echo", 100, 50, 10**6, 200, 120, False))])
    rollup_dirty_hours()
    assert UsageRollupDay.objects.get().requests == 1
    insert_events([_event(keys, 2, (10 * 3600 + 60, 0, "mock/echo", 7, 3, 10**5, 200, 80, False))])  # same hour

    for bucket in ("day", "range"):
        points = usage_series(since=START, until=START + timedelta(days=1), bucket=bucket)
        assert [(p.requests, p.total_tokens, p.cost_usd) for p in points] == [(2, 160, Decimal("0.00011"))]
    rollup_dirty_hours()
    assert UsageRollupDay.objects.get().requests == 2
    points = usage_series(since=START, until=START + timedelta(days=1), bucket="day")
    assert [(p.requests, p.total_tokens) for p in points] == [(2, 160)]
