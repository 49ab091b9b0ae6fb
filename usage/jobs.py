"""Background jobs of usage: keep the hourly rollups up to date and purge old raw events
(SPEC §7, §8). Both are idempotent and safe to run late, twice, or in two workers at once."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction

from usage.models import UsageEvent, UsageRetention, UsageRollupDirtyHour
from usage.rollups import hour_floor, rollup_dirty_hours

log = logging.getLogger(__name__)

PURGE_CHUNK = timedelta(days=1)


def rollup_usage(now: datetime) -> int:
    """Recompute the rollups of every dirty hour; returns how many hours were cleared. `now` is
    unused (the dirty marks say what to do) but kept for the jobs' common signature."""
    cleared = 0
    while True:
        batch = rollup_dirty_hours(limit=500)
        cleared += batch
        if batch < 500:
            return cleared


def purge_usage_events(now: datetime) -> int:
    """Delete raw usage events older than `AIGW_USAGE_RETENTION_DAYS` (0: keep them), a day at a
    time, oldest first; returns how many were deleted. Their rollups are kept.

    A chunk is purged only once its hours are rolled up. Each chunk's delete and the move of
    `UsageRetention.purged_before` are one transaction, which is rolled back if an event of the
    chunk arrived meanwhile (its hour is dirty again): the next run retries. A late event that
    arrives after the purge is added to its hour's rollup by the rollup job."""
    days = settings.AIGW_USAGE_RETENTION_DAYS
    if not days:
        return 0
    cutoff = hour_floor(now - timedelta(days=days))
    rollup_usage(now)
    first = UsageEvent.objects.filter(created_at__lt=cutoff).order_by("created_at").values_list("created_at", flat=True)
    start = hour_floor(first[0]) if first else cutoff
    deleted = 0
    while True:
        end = min(start + PURGE_CHUNK, cutoff)
        with transaction.atomic():
            retention = UsageRetention.objects.select_for_update().get_or_create(pk=1)[0]
            count = UsageEvent.objects.filter(created_at__lt=end).delete()[0]
            if UsageRollupDirtyHour.objects.filter(hour__lt=end).exists():
                transaction.set_rollback(True)
                log.info("usage purge before %s postponed: hours not rolled up yet", end)
                return deleted
            if retention.purged_before is None or retention.purged_before < end:
                retention.purged_before = end
                retention.save(update_fields=["purged_before"])
        deleted += count
        if end >= cutoff:
            return deleted
        start = end
