"""The limits engine's background jobs with a controlled clock (time-machine, never a sleep):
periods close at their exact UTC boundaries with the usage of their window only; a late, a
repeated and a concurrent run all give the same records; keys expire at the exact second;
Redis counters that lost increments are raised, never lowered; the beat schedule is in the
database and the embedded runner runs the jobs in the server process."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from config.scheduler import start_in_process_jobs
from gateway.setup import gateway_create
from keys.models import ApiKeyStatus, SuspendedReason
from keys.services import api_key_create, api_key_revoke
from quotas.counters import counter_name, usd_to_units, window_tag
from quotas.jobs import close_periods, mark_expired_keys, reconcile_counters
from quotas.models import LimitPeriod, RefreshPeriod
from quotas.selectors import used_in_window
from quotas.services import spend_budget_create, spend_budget_update, token_quota_set
from tests.factories import ResourceGroupFactory, UsageEventFactory
from usage.models import UsageEvent

DAILY, WEEKLY, MONTHLY, NONE = RefreshPeriod.DAILY, RefreshPeriod.WEEKLY, RefreshPeriod.MONTHLY, RefreshPeriod.NONE
LAST_MICROSECOND = (23, 59, 59, 999_999)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def at(moment: datetime) -> time_machine.travel:
    return time_machine.travel(moment, tick=False)


def new_key(created: datetime, **gateway_options):
    """A gateway and its first API key, created at `created`."""
    with at(created):
        _, api_key, _ = gateway_create(resource_group=ResourceGroupFactory(), name="jobs", **gateway_options)
    return api_key


def budget(api_key, created: datetime, refresh_period: str, **options):
    with at(created):
        return spend_budget_create(api_key=api_key, limit_usd=100, refresh_period=refresh_period, **options)


def event(api_key, when: datetime, *, tokens: int, usd: str) -> UsageEvent:
    return UsageEventFactory(
        api_key=api_key,
        created_at=when,
        input_tokens=tokens,
        output_tokens=0,
        total_tokens=tokens,
        cost_usd=Decimal(usd),
    )


def periods(**filters) -> list[tuple]:
    """(level, entity, period, start, end, tokens, USD, closed) of every LimitPeriod row, oldest first."""
    rows = LimitPeriod.objects.filter(**filters).order_by("level", "entity_id", "refresh_period", "window_start")
    return [
        (r.level, r.entity_id, r.refresh_period, r.window_start, r.window_end, r.used_tokens, r.spend_usd, r.closed)
        for r in rows
    ]


def windows(api_key, refresh_period=DAILY) -> list[tuple]:
    """(start, end, tokens, USD, closed) of the key's periods, oldest first."""
    return [row[3:] for row in periods(level="api_key", entity_id=api_key.pk, refresh_period=refresh_period)]


def run_close(moment: datetime) -> int:
    with at(moment):
        return close_periods(timezone.now())


# -- close_periods ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_daily_budget_period_closes_at_midnight_utc_with_that_days_usage_only():
    api_key = new_key(utc(2026, 11, 22, 9))
    budget(api_key, utc(2026, 11, 22, 9), DAILY)
    event(api_key, utc(2026, 11, 21, *LAST_MICROSECOND), tokens=1000, usd="5")  # the day before
    event(api_key, utc(2026, 11, 22, 0, 0, 0), tokens=100, usd="0.0123456789")  # first microsecond of the day
    event(api_key, utc(2026, 11, 22, 14, 30), tokens=20, usd="1.25")
    event(api_key, utc(2026, 11, 22, *LAST_MICROSECOND), tokens=3, usd="0.0000000001")  # last microsecond
    event(api_key, utc(2026, 11, 23, 0, 0, 0), tokens=7, usd="0.5")  # the next day

    assert run_close(utc(2026, 11, 22, *LAST_MICROSECOND)) == 0
    assert windows(api_key) == [
        (utc(2026, 11, 22), utc(2026, 11, 23), 123, Decimal("1.2623456790"), False),  # open: so far
    ]

    assert run_close(utc(2026, 11, 23, 0, 0, 0)) == 1
    assert windows(api_key) == [
        (utc(2026, 11, 22), utc(2026, 11, 23), 123, Decimal("1.2623456790"), True),
        (utc(2026, 11, 23), utc(2026, 11, 24), 7, Decimal("0.5"), False),
    ]


@pytest.mark.django_db
def test_a_daily_token_quota_period_is_recorded_on_its_gateway():
    api_key = new_key(utc(2026, 11, 22, 9), token_quota=1000, token_quota_refresh_period=DAILY)
    event(api_key, utc(2026, 11, 22, 10), tokens=400, usd="0.04")

    run_close(utc(2026, 11, 23, 0, 0, 0))

    assert periods() == [
        ("gateway", api_key.gateway_id, DAILY, utc(2026, 11, 22), utc(2026, 11, 23), 400, Decimal("0.04"), True),
        ("gateway", api_key.gateway_id, DAILY, utc(2026, 11, 23), utc(2026, 11, 24), 0, Decimal(0), False),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("refresh_period", "start", "end", "next_end"),
    [
        (WEEKLY, utc(2026, 11, 23), utc(2026, 11, 30), utc(2026, 12, 7)),  # Monday to Monday
        (MONTHLY, utc(2026, 10, 1), utc(2026, 11, 1), utc(2026, 12, 1)),  # 31 days, then November's 30
        (MONTHLY, utc(2026, 11, 1), utc(2026, 12, 1), utc(2027, 1, 1)),  # 30 days, then December's 31
        (MONTHLY, utc(2028, 2, 1), utc(2028, 3, 1), utc(2028, 4, 1)),  # February of a leap year: 29 days
        (MONTHLY, utc(2027, 2, 1), utc(2027, 3, 1), utc(2027, 4, 1)),  # February of a common year: 28 days
    ],
)
def test_weekly_and_monthly_periods_close_at_the_first_second_of_the_next_window(refresh_period, start, end, next_end):
    created = start + timedelta(hours=8)
    api_key = new_key(created, token_quota=10_000, token_quota_refresh_period=refresh_period)
    budget(api_key, created, refresh_period)
    last_microsecond = end - timedelta(microseconds=1)
    event(api_key, start - timedelta(microseconds=1), tokens=1000, usd="9")  # the window before
    event(api_key, start, tokens=10, usd="0.1")
    event(api_key, last_microsecond, tokens=5, usd="0.05")
    event(api_key, end, tokens=1, usd="0.01")  # the next window

    assert run_close(last_microsecond) == 0
    assert windows(api_key, refresh_period) == [(start, end, 15, Decimal("0.15"), False)]

    assert run_close(end) == 2  # the key's budget and the gateway's token quota
    expected = [
        (start, end, 15, Decimal("0.15"), True),
        (end, next_end, 1, Decimal("0.01"), False),
    ]
    assert windows(api_key, refresh_period) == expected
    assert [row[3:] for row in periods(level="gateway", entity_id=api_key.gateway_id)] == expected


@pytest.mark.django_db
def test_october_closes_with_31_days_and_november_with_30():
    api_key = new_key(utc(2026, 10, 1, 8))
    budget(api_key, utc(2026, 10, 1, 8), MONTHLY)
    event(api_key, utc(2026, 10, 31, *LAST_MICROSECOND), tokens=31, usd="3.1")
    event(api_key, utc(2026, 11, 30, *LAST_MICROSECOND), tokens=30, usd="3")

    run_close(utc(2026, 12, 1))

    assert windows(api_key, MONTHLY) == [
        (utc(2026, 10, 1), utc(2026, 11, 1), 31, Decimal("3.1"), True),
        (utc(2026, 11, 1), utc(2026, 12, 1), 30, Decimal("3"), True),
        (utc(2026, 12, 1), utc(2027, 1, 1), 0, Decimal(0), False),
    ]


@pytest.mark.django_db
def test_limits_without_refresh_period_and_budgets_not_enforced_never_create_periods():
    lifetime = new_key(utc(2026, 11, 1), token_quota=1000)  # refresh period `none`
    budget(lifetime, utc(2026, 11, 1), NONE)
    inactive = new_key(utc(2026, 11, 1))
    budget(inactive, utc(2026, 11, 1), DAILY, active=False)
    archived = new_key(utc(2026, 11, 1))
    spend_budget_update(budget=budget(archived, utc(2026, 11, 1), DAILY), archived=True)
    for api_key in (lifetime, inactive, archived):
        event(api_key, utc(2026, 11, 2), tokens=10, usd="1")

    for moment in (utc(2026, 11, 2), utc(2026, 12, 1), utc(2027, 1, 1), utc(2028, 1, 1)):
        assert run_close(moment) == 0

    assert LimitPeriod.objects.count() == 0


@pytest.mark.django_db
def test_a_job_run_three_days_late_creates_every_missed_window():
    api_key = new_key(utc(2026, 11, 22, 10))
    budget(api_key, utc(2026, 11, 22, 10), DAILY)
    for day, tokens in ((22, 1), (23, 2), (24, 3), (25, 4)):
        event(api_key, utc(2026, 11, day, 12 if day < 25 else 6), tokens=tokens, usd=f"0.{tokens}")

    assert run_close(utc(2026, 11, 25, 7)) == 3

    assert windows(api_key) == [
        (utc(2026, 11, 22), utc(2026, 11, 23), 1, Decimal("0.1"), True),  # the window it was created in
        (utc(2026, 11, 23), utc(2026, 11, 24), 2, Decimal("0.2"), True),
        (utc(2026, 11, 24), utc(2026, 11, 25), 3, Decimal("0.3"), True),
        (utc(2026, 11, 25), utc(2026, 11, 26), 4, Decimal("0.4"), False),  # open: the day so far
    ]


@pytest.mark.django_db
def test_the_look_back_is_capped_at_400_days():
    api_key = new_key(utc(2024, 1, 1))
    budget(api_key, utc(2024, 1, 1), DAILY)

    assert run_close(utc(2026, 11, 22)) == 400

    rows = windows(api_key)
    assert rows[0][0] == utc(2025, 10, 18)  # 400 days before 2026-11-22
    assert len(rows) == 401 and rows[-1][:2] == (utc(2026, 11, 22), utc(2026, 11, 23))


@pytest.mark.django_db
def test_running_the_job_twice_gives_the_same_rows():
    api_key = new_key(utc(2026, 11, 20, 10), token_quota=500, token_quota_refresh_period=WEEKLY)
    budget(api_key, utc(2026, 11, 20, 10), DAILY)
    for day in (20, 21, 22, 23):
        event(api_key, utc(2026, 11, day, 12), tokens=day, usd=f"0.{day}")

    first = run_close(utc(2026, 11, 24, 1))
    rows = periods()
    again = run_close(utc(2026, 11, 24, 1))

    assert (first, again) == (5, 0)  # 20-23 Nov daily, the week of 16 Nov; nothing the second time
    assert periods() == rows
    assert LimitPeriod.objects.count() == 4 + 1 + 1 + 1  # closed days, open day, closed week, open week


@pytest.mark.django_db
def test_a_closed_period_keeps_its_numbers_when_the_job_runs_again():
    api_key = new_key(utc(2026, 11, 22, 10))
    budget(api_key, utc(2026, 11, 22, 10), DAILY)
    event(api_key, utc(2026, 11, 22, 12), tokens=10, usd="1")
    run_close(utc(2026, 11, 23))
    closed = windows(api_key)[0]

    event(api_key, utc(2026, 11, 22, 23, 59), tokens=99, usd="9")  # written after the close
    run_close(utc(2026, 11, 23, 1))

    assert windows(api_key)[0] == closed == (utc(2026, 11, 22), utc(2026, 11, 23), 10, Decimal("1"), True)


@pytest.mark.django_db
def test_the_open_period_follows_the_usage_of_the_current_window():
    api_key = new_key(utc(2026, 11, 22, 10))
    budget(api_key, utc(2026, 11, 22, 10), DAILY)
    event(api_key, utc(2026, 11, 22, 11), tokens=10, usd="1")
    run_close(utc(2026, 11, 22, 12))
    event(api_key, utc(2026, 11, 22, 12, 30), tokens=5, usd="0.5")

    run_close(utc(2026, 11, 22, 13))

    assert windows(api_key) == [(utc(2026, 11, 22), utc(2026, 11, 23), 15, Decimal("1.5"), False)]


@pytest.mark.django_db(transaction=True)
def test_two_workers_closing_periods_at_the_same_moment_write_the_same_rows_without_error():
    keys = []
    for n in range(4):
        api_key = new_key(utc(2026, 10, 20, n), token_quota=10_000, token_quota_refresh_period=WEEKLY)
        budget(api_key, utc(2026, 10, 20, n), DAILY)
        for day in range(20, 32):
            event(api_key, utc(2026, 10, day, n), tokens=day + n, usd=f"{day}.{n}")
        keys.append(api_key)
    now = utc(2026, 11, 1, 0, 0, 0)
    barrier = threading.Barrier(2)
    results: list[int] = []
    errors: list[BaseException] = []

    def worker():
        try:
            barrier.wait(timeout=10)
            results.append(close_periods(now))
        except BaseException as error:  # noqa: BLE001  (reported by the assertion below)
            errors.append(error)
        finally:
            connection.close()

    with at(now):
        threads = [threading.Thread(target=worker) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        concurrent_rows = periods()
        assert close_periods(now) == 0  # a third, later run finds everything closed

    assert errors == []
    # every window was seen unclosed by at least one of the two runs
    assert len(results) == 2 and max(results) <= 4 * (12 + 1) <= sum(results)
    assert periods() == concurrent_rows
    # 4 keys x (12 closed days, 20-31 Oct + 1 open day) and 4 gateways x (1 closed week from
    # Monday 19 Oct + 1 open week from Monday 26 Oct; 1 Nov is a Sunday)
    assert LimitPeriod.objects.filter(closed=True).count() == 4 * 12 + 4 * 1
    assert LimitPeriod.objects.filter(closed=False).count() == 4 + 4
    for row in LimitPeriod.objects.filter(closed=True):
        used = used_in_window(level=row.level, entity_id=row.entity_id, since=row.window_start, until=row.window_end)
        assert (row.used_tokens, row.spend_usd) == (used.tokens, used.usd)


# -- mark_expired_keys ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_key_is_marked_expired_at_the_exact_second_of_its_expiry_and_not_a_microsecond_before():
    expiry = utc(2026, 11, 22, 12, 0, 0)
    expiring = new_key(utc(2026, 11, 1), expires_at=expiry)
    forever = api_key_create(gateway=expiring.gateway, name="no expiry")[0]
    revoked = api_key_revoke(api_key=api_key_create(gateway=expiring.gateway, name="revoked", expires_at=expiry)[0])
    suspended = api_key_create(gateway=expiring.gateway, name="suspended", expires_at=expiry)[0]
    suspended.status, suspended.suspended_reason = ApiKeyStatus.SUSPENDED, SuspendedReason.ADMIN
    suspended.save()

    assert mark_expired_keys(expiry - timedelta(microseconds=1)) == 0
    expiring.refresh_from_db()
    assert expiring.status == ApiKeyStatus.ACTIVE

    assert mark_expired_keys(expiry) == 1
    assert mark_expired_keys(expiry + timedelta(days=3)) == 0  # twice, late: nothing more to do

    statuses = {k.name: k.status for k in expiring.gateway.api_keys.all()}
    assert statuses == {
        expiring.name: ApiKeyStatus.EXPIRED,
        forever.name: ApiKeyStatus.ACTIVE,
        revoked.name: ApiKeyStatus.REVOKED,
        suspended.name: ApiKeyStatus.SUSPENDED,
    }


def test_the_jobs_refuse_a_naive_datetime():
    for job in (close_periods, mark_expired_keys, reconcile_counters):
        with pytest.raises(ValueError, match="aware"):
            job(datetime(2026, 11, 22, 12))  # noqa: DTZ001


# -- reconcile_counters -----------------------------------------------------------------------------


@pytest.fixture
def redis_client(settings):
    """The test Redis (its keys deleted afterwards), or None when REDIS_URL is unset."""
    if not settings.REDIS_URL:
        yield None
        return
    import redis

    client = redis.from_url(settings.REDIS_URL)
    yield client
    names = list(client.scan_iter(match=f"{settings.AIGW_REDIS_PREFIX}:*"))
    if names:
        client.delete(*names)
    client.close()


@pytest.mark.django_db
def test_reconciling_does_nothing_with_in_process_counters(settings):
    settings.REDIS_URL = ""
    api_key = new_key(utc(2026, 11, 22, 9), token_quota=1000, token_quota_refresh_period=DAILY)
    budget(api_key, utc(2026, 11, 22, 9), DAILY)
    event(api_key, utc(2026, 11, 22, 10), tokens=10, usd="1")

    with at(utc(2026, 11, 22, 12)):
        assert reconcile_counters(timezone.now()) == 0

    assert LimitPeriod.objects.count() == 0


@pytest.mark.django_db
def test_reconciling_raises_a_counter_below_the_usage_events_and_leaves_a_higher_one_alone(redis_client):
    now = utc(2026, 11, 22, 12)
    behind = new_key(utc(2026, 11, 22, 9))  # Redis lost increments (restored from an old snapshot)
    ahead = new_key(utc(2026, 11, 22, 9))  # a reservation in flight
    lifetime = new_key(utc(2026, 11, 22, 9))
    for api_key in (behind, ahead):
        budget(api_key, utc(2026, 11, 22, 9), DAILY)
        with at(utc(2026, 11, 22, 9)):
            token_quota_set(api_key=api_key, limit_tokens=10_000, refresh_period=DAILY)
        event(api_key, utc(2026, 11, 21, 23), tokens=1000, usd="10")  # yesterday: another counter
        event(api_key, utc(2026, 11, 22, 10), tokens=300, usd="0.0300000001")
    with at(utc(2026, 11, 22, 9)):
        token_quota_set(api_key=lifetime, limit_tokens=10_000)
    event(lifetime, utc(2026, 1, 1), tokens=70, usd="1")

    if redis_client is None:  # embedded default: in-process counters, nothing to reconcile
        with at(now):
            assert reconcile_counters(timezone.now()) == 0
        assert LimitPeriod.objects.count() == 0
        return

    def name(kind, api_key, period=DAILY):
        group_id = api_key.gateway.resource_group_id
        return counter_name(kind, "api_key", api_key.pk, window_tag(period, now), group_id=group_id)

    db_spend = usd_to_units(Decimal("0.0300000001"))
    redis_client.set(name("spend", behind), db_spend - 12_345)
    redis_client.set(name("tokens", behind), 250)
    redis_client.set(name("spend", ahead), db_spend + 999)
    # the key `ahead` has no token counter yet: the data plane seeds it on the next request
    redis_client.set(name("tokens", lifetime, NONE), 60)

    with at(now):
        assert reconcile_counters(timezone.now()) == 3
        assert reconcile_counters(timezone.now()) == 0  # a second run finds nothing to raise

    assert int(redis_client.get(name("spend", behind))) == db_spend
    assert int(redis_client.get(name("tokens", behind))) == 300
    assert int(redis_client.get(name("spend", ahead))) == db_spend + 999
    assert redis_client.get(name("tokens", ahead)) is None
    assert int(redis_client.get(name("tokens", lifetime, NONE))) == 70
    for api_key in (behind, ahead):
        assert windows(api_key) == [(utc(2026, 11, 22), utc(2026, 11, 23), 300, Decimal("0.0300000001"), False)]
    assert periods(entity_id=lifetime.pk) == []  # lifetime limits have no periods


# -- schedule and runners ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_beat_schedule_is_in_the_database_after_migrations_and_names_real_tasks():
    from django_celery_beat.models import PeriodicTask

    import quotas.tasks  # noqa: F401  (registers the tasks)
    from config.celery import app

    schedule = {t.name: t for t in PeriodicTask.objects.filter(name__startswith="quotas.")}

    assert set(schedule) == {
        "quotas.close_periods",
        "quotas.mark_expired_keys",
        "quotas.reconcile_counters",
        "quotas.recover_usage",
    }
    for task in schedule.values():
        assert task.enabled and task.task in app.tasks
    close = schedule["quotas.close_periods"].crontab
    assert (close.minute, close.hour, str(close.timezone)) == ("15", "*", "UTC")
    assert schedule["quotas.mark_expired_keys"].interval.every == 60
    assert schedule["quotas.recover_usage"].interval.every == 60


@pytest.mark.django_db
def test_the_celery_tasks_run_the_jobs_at_the_current_time():
    from quotas import tasks

    new_key(utc(2026, 11, 1), expires_at=utc(2026, 11, 22, 12))

    with at(utc(2026, 11, 22, 12)):
        assert tasks.mark_expired_keys.apply().get() == 1
        assert tasks.close_periods.apply().get() == 0


@pytest.mark.django_db(transaction=True)
def test_the_embedded_runner_runs_the_jobs_in_the_server_process_until_stopped():
    api_key = new_key(timezone.now() - timedelta(days=2), expires_at=timezone.now() - timedelta(seconds=1))
    budget(api_key, timezone.now() - timedelta(days=2), DAILY)

    async def serve():
        runner = start_in_process_jobs(interval_seconds=3600, enabled=True)
        for _ in range(1000):
            if runner.rounds:
                break
            await asyncio.sleep(0.01)
        await runner.stop()
        return runner

    runner = asyncio.run(serve())

    api_key.refresh_from_db()
    assert runner.rounds == 1 and not runner.running
    assert api_key.status == ApiKeyStatus.EXPIRED
    assert LimitPeriod.objects.filter(entity_id=api_key.pk, closed=True).count() >= 2


def test_the_embedded_runner_does_nothing_when_it_is_turned_off():
    async def serve():
        runner = start_in_process_jobs(enabled=False)
        await runner.stop()
        return runner

    runner = asyncio.run(serve())

    assert not runner.running and runner.rounds == 0
