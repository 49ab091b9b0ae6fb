"""Refresh-period windows. Every window starts at 00:00 UTC: daily each day, weekly on Monday,
monthly on the 1st (Vercel's budget periods); `none` is one window for all time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from quotas.models import RefreshPeriod

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def window_start(refresh_period: str, now: datetime) -> datetime:
    """The aware UTC start of the window of `refresh_period` that contains `now`.

    Raises:
        ValueError: for an unknown refresh period.
    """
    now = now.astimezone(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if refresh_period == RefreshPeriod.NONE:
        return EPOCH
    if refresh_period == RefreshPeriod.DAILY:
        return midnight
    if refresh_period == RefreshPeriod.WEEKLY:
        return midnight - timedelta(days=midnight.weekday())
    if refresh_period == RefreshPeriod.MONTHLY:
        return midnight.replace(day=1)
    raise ValueError(f"unknown refresh period {refresh_period!r}")


def window_end(refresh_period: str, now: datetime) -> datetime | None:
    """The aware UTC end (exclusive) of the window containing `now`; None for `none`."""
    start = window_start(refresh_period, now)
    if refresh_period == RefreshPeriod.NONE:
        return None
    if refresh_period == RefreshPeriod.DAILY:
        return start + timedelta(days=1)
    if refresh_period == RefreshPeriod.WEEKLY:
        return start + timedelta(days=7)
    if start.month == 12:
        return start.replace(year=start.year + 1, month=1)
    return start.replace(month=start.month + 1)
