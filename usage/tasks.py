"""Celery tasks of usage: thin wrappers calling `usage.jobs` with the current time. They take no
arguments, so a message queued late or twice does no harm; the schedule lives in the database
(django-celery-beat rows written by migration 0004_usage_jobs_schedule)."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from usage import jobs


@shared_task(name="usage.rollup_usage")
def rollup_usage() -> int:
    """Recompute the hourly rollups of the hours that changed; returns how many were cleared."""
    return jobs.rollup_usage(timezone.now())


@shared_task(name="usage.purge_usage_events")
def purge_usage_events() -> int:
    """Delete raw usage events past `AIGW_USAGE_RETENTION_DAYS`; returns how many."""
    return jobs.purge_usage_events(timezone.now())
