"""Celery tasks of the limits engine: thin wrappers that call `quotas.jobs` with the current
time. They take no arguments, so a message queued late or twice does no harm; the schedule
lives in the database (django-celery-beat, rows written by migration 0003_periodic_jobs)."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from quotas import jobs


@shared_task(name="quotas.close_periods")
def close_periods() -> int:
    """Close the refresh periods that have ended and refresh the current ones (see
    `quotas.jobs.close_periods`); returns how many windows were closed."""
    return jobs.close_periods(timezone.now())


@shared_task(name="quotas.mark_expired_keys")
def mark_expired_keys() -> int:
    """Mark active API keys past `expires_at` as expired; returns how many changed."""
    return jobs.mark_expired_keys(timezone.now())


@shared_task(name="quotas.reconcile_counters")
def reconcile_counters() -> int:
    """Raise Redis counters that fell below the usage events; returns how many were raised
    (0 with in-process counters).

    Raises:
        redis.RedisError: when Redis cannot be reached (the next run tries again).
    """
    return jobs.reconcile_counters(timezone.now())


@shared_task(name="quotas.recover_usage")
def recover_usage() -> int:
    """Write stopped processes' spooled usage events and meter their forwarded requests with no
    outcome as `interrupted` (see `quotas.jobs.recover_usage`); returns how many were interrupted."""
    return jobs.recover_usage(timezone.now())
