"""Refresh-period windows start at 00:00 UTC: daily, weekly on Monday, monthly on the 1st."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from quotas.periods import EPOCH, window_end, window_start


@pytest.mark.parametrize(
    ("period", "now", "start", "end"),
    [
        (
            "daily",
            datetime(2026, 11, 22, 23, 59, 59, tzinfo=UTC),
            datetime(2026, 11, 22, tzinfo=UTC),
            datetime(2026, 11, 23, tzinfo=UTC),
        ),
        (
            "weekly",
            datetime(2026, 11, 22, 12, tzinfo=UTC),
            datetime(2026, 11, 16, tzinfo=UTC),
            datetime(2026, 11, 23, tzinfo=UTC),
        ),
        (
            "weekly",
            datetime(2026, 11, 23, 0, 0, tzinfo=UTC),
            datetime(2026, 11, 23, tzinfo=UTC),
            datetime(2026, 11, 30, tzinfo=UTC),
        ),
        (
            "monthly",
            datetime(2026, 12, 31, 23, 0, tzinfo=UTC),
            datetime(2026, 12, 1, tzinfo=UTC),
            datetime(2027, 1, 1, tzinfo=UTC),
        ),
        (
            "monthly",
            datetime(2028, 2, 29, 8, 0, tzinfo=UTC),
            datetime(2028, 2, 1, tzinfo=UTC),
            datetime(2028, 3, 1, tzinfo=UTC),
        ),
    ],
)
def test_windows_start_and_end_at_utc_boundaries(period, now, start, end):
    assert window_start(period, now) == start
    assert window_end(period, now) == end


def test_a_time_in_another_zone_falls_in_its_utc_window():
    tokyo_morning = datetime(2026, 11, 23, 8, 0, tzinfo=timezone(timedelta(hours=9)))  # 23:00 UTC the day before
    assert window_start("daily", tokyo_morning) == datetime(2026, 11, 22, tzinfo=UTC)


def test_none_is_one_window_for_all_time():
    assert window_start("none", datetime(2030, 1, 1, tzinfo=UTC)) == EPOCH
    assert window_end("none", datetime(2030, 1, 1, tzinfo=UTC)) is None
