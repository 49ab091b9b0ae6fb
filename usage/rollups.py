"""Hourly usage rollups: how they are kept up to date, and how they are read (SPEC §7).

Writing. The recorder inserts a batch of usage events and, in the same transaction, marks each
UTC hour the batch touches as dirty (`UsageRollupDirtyHour`, with a fresh random `token`). The
rollup job (`rollup_dirty_hours`, every minute) recomputes each dirty hour from its raw events
in one grouped query, replaces that hour's `UsageRollup` rows, and deletes the dirty mark only if
its token is unchanged. An event committed while the job ran has changed the token, so the hour
stays dirty and is recomputed on the next run: nothing is ever missed, and a recompute is
idempotent. Hours before the retention watermark (`UsageRetention.purged_before`) have no raw
events left but those that arrived late, so there the late events are added to the rollups and
then deleted, instead of replacing them.

Reading. `usage_series` answers from the rollups for the whole clean hours of the range and from
the raw events for everything else: dirty hours, and the partial hours at either end. The answer
is therefore always equal to adding up the raw events, whether or not the job has caught up,
while long ranges read a few thousand rollup rows instead of millions of events.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import F, Model, Q, QuerySet, Sum
from django.db.models.functions import TruncDay, TruncHour

from core.permissions import Action
from usage.models import (
    LATENCY_BOUNDS_MS,
    LATENCY_FIELDS,
    TOKEN_FIELDS,
    UsageEvent,
    UsageRetention,
    UsageRollup,
    UsageRollupDay,
    UsageRollupDirtyHour,
    UsageWriteGate,
)

log = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
SUM_FIELDS = ("requests", "errors", *TOKEN_FIELDS, "cost_usd", "latency_ms_sum", *LATENCY_FIELDS)
KEY_FIELDS = ("resource_group_id", "gateway_id", "api_key_id", "model_requested")
# What `usage_series` can split a bucket by, and the column it groups on.
GROUP_BY = {
    "api_key": "api_key_id",
    "model": "model_requested",
    "gateway": "gateway_id",
    "resource_group": "resource_group_id",
}
BUCKETS = ("hour", "day", "range")  # "range": the whole range as one point starting at `since`
# Filters `usage_series` accepts: the column each one narrows.
FILTERS = {
    "resource_group": "resource_group_id",
    "gateway": "gateway_id",
    "api_key": "api_key_id",
    "model": "model_requested",
}


def hour_floor(instant: datetime) -> datetime:
    """The start of `instant`'s UTC hour (aware UTC)."""
    return instant.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _latency_bucket_filter(index: int) -> Q:
    if index == len(LATENCY_BOUNDS_MS):
        return Q(latency_ms__gte=LATENCY_BOUNDS_MS[-1])
    upper = Q(latency_ms__lt=LATENCY_BOUNDS_MS[index])
    return upper if index == 0 else upper & Q(latency_ms__gte=LATENCY_BOUNDS_MS[index - 1])


def _event_sums() -> dict[str, Any]:
    """Aggregates over usage events giving a rollup row's counters."""
    # Requests are counted by summing `requests` (an aggregate row of a refusal flood stands for
    # several). Every sum that reads the column comes before the annotation named `requests`,
    # which would hide the column from the ones after it.
    sums: dict[str, Any] = {"errors": Sum("requests", filter=Q(status_code__gte=400))}
    for index, name in enumerate(LATENCY_FIELDS):
        sums[name] = Sum("requests", filter=_latency_bucket_filter(index))
    sums.update(
        {
            "requests": Sum("requests"),
            "cost_usd": Sum("cost_usd"),
            "latency_ms_sum": Sum("latency_ms"),
            **{name: Sum(name) for name in TOKEN_FIELDS},
        }
    )
    return sums


def _rollup_sums() -> dict[str, Any]:
    return {name: Sum(name) for name in SUM_FIELDS}


# Writing --------------------------------------------------------------------------------------


def mark_dirty(created_at: Iterable[datetime]) -> None:
    """Mark the UTC hours of these event times as needing a recompute. Call it in the transaction
    that inserts the events. Each call gives the hours a new token (INSERT … ON CONFLICT DO
    UPDATE), which tells a rollup job running meanwhile that it must not clear them."""
    hours = sorted({hour_floor(instant) for instant in created_at})
    if not hours:
        return
    token = uuid.uuid4().hex
    UsageRollupDirtyHour.objects.bulk_create(
        [UsageRollupDirtyHour(hour=hour, token=token) for hour in hours],
        update_conflicts=True,
        unique_fields=["hour"],
        update_fields=["token"],
    )


def insert_events(events: list[UsageEvent]) -> int:
    """Insert usage events (an event whose request id is already stored is skipped) and mark
    their hours dirty, in one transaction. The only way events are written. On PostgreSQL the
    batch is copied (`_copy_events`), elsewhere it is one `bulk_create`.
    Returns the usage-write generation the transaction committed at (`UsageWriteGate`)."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            _copy_events(events)
        else:
            UsageEvent.objects.bulk_create(events, ignore_conflicts=True)
        mark_dirty(event.created_at for event in events)
        return write_generation()


_EVENT_TABLE = UsageEvent._meta.db_table
_BATCH_TABLE = "usage_event_batch"  # a temporary table per connection, emptied at each commit
_COPIED = [field for field in UsageEvent._meta.concrete_fields if not field.primary_key]
_COLUMNS = ", ".join(connection.ops.quote_name(field.column) for field in _COPIED)


def _copy_events(events: list[UsageEvent]) -> None:
    """PostgreSQL: COPY the events into a temporary table, then move them into the events table
    with INSERT … ON CONFLICT DO NOTHING (COPY itself cannot skip a stored request id). About a
    tenth of `bulk_create`'s CPU time per event (docs/performance.md, 2026-12-04)."""
    attnames = [field.attname for field in _COPIED]
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {_BATCH_TABLE} ON COMMIT DELETE ROWS "  # noqa: S608 - our names
            f"AS SELECT {_COLUMNS} FROM {_EVENT_TABLE} WITH NO DATA"
        )
        with cursor.cursor.copy(f"COPY {_BATCH_TABLE} ({_COLUMNS}) FROM STDIN") as copy:  # noqa: S608
            for event in events:
                copy.write_row([getattr(event, name) for name in attnames])
        cursor.execute(
            f"INSERT INTO {_EVENT_TABLE} ({_COLUMNS}) SELECT {_COLUMNS} FROM {_BATCH_TABLE} "  # noqa: S608
            "ON CONFLICT DO NOTHING"
        )
        cursor.execute(f"DELETE FROM {_BATCH_TABLE}")  # noqa: S608 - inside an outer transaction too


_GATE_TABLE = UsageWriteGate._meta.db_table


def write_generation() -> int:
    """The usage-write generation, read inside a transaction that stored usage events, after its
    inserts: on PostgreSQL under a share lock, so no counter seed can advance it until this
    transaction ends (SQLite has one writer at a time). 0 before the first seed."""
    lock = " FOR SHARE" if connection.vendor == "postgresql" else ""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT generation FROM {_GATE_TABLE} WHERE id = 1{lock}")  # noqa: S608 - our table name
        row = cursor.fetchone()
        if row is None:  # no row to lock yet (a database emptied by hand or by a test): make it
            UsageWriteGate.objects.bulk_create([UsageWriteGate(pk=1, generation=0)], ignore_conflicts=True)
            cursor.execute(f"SELECT generation FROM {_GATE_TABLE} WHERE id = 1{lock}")  # noqa: S608
            row = cursor.fetchone()
    return int(row[0])


def next_write_generation() -> int:
    """Advance the usage-write generation and return it; run inside the transaction of a
    counter seed, before it sums the events (`quotas.selectors.used_for_seed`). The update
    waits for transactions storing usage events to commit, and they wait for this one."""
    if not UsageWriteGate.objects.filter(pk=1).update(generation=F("generation") + 1):
        UsageWriteGate.objects.bulk_create([UsageWriteGate(pk=1, generation=0)], ignore_conflicts=True)
        UsageWriteGate.objects.filter(pk=1).update(generation=F("generation") + 1)
    return UsageWriteGate.objects.filter(pk=1).values_list("generation", flat=True).get()


def _purged_before() -> datetime | None:
    return UsageRetention.objects.filter(pk=1).values_list("purged_before", flat=True).first()


def _hour_rows(hour: datetime) -> list[UsageRollup]:
    rows = (
        UsageEvent.objects.filter(created_at__gte=hour, created_at__lt=hour + HOUR)
        .values(*KEY_FIELDS)
        .annotate(**_event_sums())
        .order_by()
    )
    return [
        UsageRollup(
            hour=hour, **{name: (row[name] if row[name] is not None else 0) for name in (*KEY_FIELDS, *SUM_FIELDS)}
        )
        for row in rows
    ]


def recompute_hour(hour: datetime) -> int:
    """Replace the rollups of the UTC hour starting at `hour` with the sums of its raw events;
    returns the number of rollup rows written. Run inside a transaction."""
    rows = _hour_rows(hour)
    UsageRollup.objects.filter(hour=hour).delete()
    UsageRollup.objects.bulk_create(rows)
    return len(rows)


def day_floor(instant: datetime) -> datetime:
    """00:00 UTC of `instant`'s day (aware UTC)."""
    return hour_floor(instant).replace(hour=0)


def recompute_day(day: datetime) -> int:
    """Replace the day rollups of the UTC day starting at `day` with the sums of its hourly
    rollups; returns the number of rows written. Run in the transaction that changed an hour."""
    rows = (
        UsageRollup.objects.filter(hour__gte=day, hour__lt=day + DAY)
        .values(*KEY_FIELDS)
        .annotate(**_rollup_sums())
        .order_by()
    )
    days = [UsageRollupDay(day=day, **{name: row[name] for name in (*KEY_FIELDS, *SUM_FIELDS)}) for row in rows]
    UsageRollupDay.objects.filter(day=day).delete()
    UsageRollupDay.objects.bulk_create(days)
    return len(days)


def _add_late_events(hour: datetime) -> int:
    """For an hour already purged: add its (late) raw events to its rollups, then delete them."""
    added = 0
    for row in _hour_rows(hour):
        existing = UsageRollup.objects.filter(hour=hour, api_key_id=row.api_key_id, model_requested=row.model_requested)
        changes = {name: F(name) + getattr(row, name) for name in SUM_FIELDS}
        if not existing.update(**changes):
            row.save(force_insert=True)
        added += row.requests
    UsageEvent.objects.filter(created_at__gte=hour, created_at__lt=hour + HOUR).delete()
    return added


def rollup_dirty_hours(*, limit: int = 500) -> int:
    """Bring the rollups of up to `limit` dirty hours (oldest first) up to date; returns how many
    hours were cleared. Safe to run late, twice, or in two workers at once: each hour is locked
    (SELECT … FOR UPDATE SKIP LOCKED on PostgreSQL) while it is recomputed."""
    hours = list(UsageRollupDirtyHour.objects.order_by("hour").values_list("hour", flat=True)[:limit])
    purged_before = _purged_before()
    cleared = 0
    for hour in hours:
        with transaction.atomic():
            mark = UsageRollupDirtyHour.objects.select_for_update(skip_locked=True).filter(hour=hour).first()
            if mark is None:
                continue  # another worker has it, or has just cleared it
            if purged_before is not None and hour < purged_before:
                _add_late_events(hour)
            else:
                recompute_hour(hour)
            recompute_day(day_floor(hour))
            cleared += UsageRollupDirtyHour.objects.filter(hour=hour, token=mark.token).delete()[0]
    return cleared


# Reading --------------------------------------------------------------------------------------


@dataclass(slots=True)
class UsagePoint:
    """Usage of one bucket (and one `key` when split): requests, errors, tokens by type, cost
    (USD, Decimal), latency (sum in ms, and a histogram for percentiles)."""

    start: datetime  # UTC start of the hour or day
    key: Any = None  # api key id, gateway id, group id or model name (or a tuple), per `group_by`
    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    total_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    latency_ms_sum: int = 0
    latency_histogram: list[int] = field(default_factory=lambda: [0] * len(LATENCY_FIELDS))

    def add(self, row: dict) -> None:
        """Add a row of sums (as `values().annotate()` gives them) to this point."""
        for name in ("requests", "errors", *TOKEN_FIELDS, "latency_ms_sum"):
            setattr(self, name, getattr(self, name) + int(row[name] or 0))
        self.cost_usd += row["cost_usd"] or Decimal(0)
        for index, name in enumerate(LATENCY_FIELDS):
            self.latency_histogram[index] += int(row[name] or 0)

    @property
    def error_rate(self) -> Decimal:
        """Failed requests (status ≥ 400) as a percentage of all, one decimal place."""
        if not self.requests:
            return Decimal(0)
        return (Decimal(100) * self.errors / self.requests).quantize(Decimal("0.1"))

    def latency_percentile(self, fraction: float) -> int | None:
        """The latency (ms) below which `fraction` (0–1) of the requests fall, read from the
        histogram with linear interpolation inside a bucket; None without requests."""
        return latency_percentile(self.latency_histogram, fraction)


def latency_percentile(histogram: list[int], fraction: float) -> int | None:
    """The `fraction` (0–1) percentile in ms of a latency histogram over `LATENCY_BOUNDS_MS`,
    interpolated linearly inside its bucket (the open last bucket gives its lower bound)."""
    count = sum(histogram)
    if not count:
        return None
    rank = fraction * count
    seen = 0
    for index, in_bucket in enumerate(histogram):
        if in_bucket and seen + in_bucket >= rank:
            lower = 0 if index == 0 else LATENCY_BOUNDS_MS[index - 1]
            if index == len(LATENCY_BOUNDS_MS):
                return lower
            upper = LATENCY_BOUNDS_MS[index]
            return round(lower + (upper - lower) * max(rank - seen, 0) / in_bucket)
        seen += in_bucket
    return LATENCY_BOUNDS_MS[-1]


def _ranges(hours: list[datetime]) -> list[tuple[datetime, datetime]]:
    """Contiguous runs of sorted hour starts as [start, end) ranges."""
    runs: list[list[datetime]] = []
    for hour in hours:
        if runs and hour == runs[-1][1]:
            runs[-1][1] = hour + HOUR
        else:
            runs.append([hour, hour + HOUR])
    return [(start, end) for start, end in runs]


def _readable(model: type[Model], user: Any) -> QuerySet:
    """Every row of `model` (a trusted caller: `user` None), or those `user` may read usage of."""
    if user is None:
        return model._default_manager.all()
    return model.objects.restrict(user, Action.VIEW_USAGE)  # type: ignore[attr-defined]


def _scoped(queryset: QuerySet, filters: dict[str, Any]) -> QuerySet:
    for name, value in filters.items():
        if value is not None and value != "":
            queryset = queryset.filter(**{FILTERS[name]: value})
    return queryset


def usage_series(
    *,
    since: datetime,
    until: datetime,
    bucket: str = "hour",
    group_by: str | tuple[str, ...] | None = None,
    filters: dict[str, Any] | None = None,
    user: Any = None,
) -> list[UsagePoint]:
    """Usage per UTC `bucket` (`hour` or `day`) in [since, until), split by `group_by` (a key of
    `GROUP_BY`, or a tuple of them: each point's `key` is then the tuple of values) or not,
    narrowed by `filters` (keys of `FILTERS`: ids, or the model name) and to what `user` may
    read (`Action.VIEW_USAGE`, through `restrict`; None: everything, for trusted callers). Points are sorted by
    start then key; buckets without requests are absent. Equal to adding up the raw events;
    before the retention watermark, where only rollups are left, partial hours at the ends of
    the range count whole.

    Steps: check the arguments, plan which source each part of the range is read from
    (`_plan_sources`), read the hourly rollups, the day rollups and the raw events in that order,
    each merged into the points as it is read.

    Raises:
        ValueError: for an unknown bucket, group_by or filter name, or naive datetimes.
    """
    dimensions, filters = _checked_arguments(since, until, bucket, group_by, filters)
    if since >= until:
        return []
    reader = _SeriesReader(
        since=since,
        trunc={"hour": TruncHour, "day": TruncDay}.get(bucket),
        split=[GROUP_BY[name] for name in dimensions],
        filters=filters,
        user=user,
    )
    plan = _plan_sources(since, until, bucket)
    if plan.whole_hours is not None:
        _read_hour_rollups(reader, plan.whole_hours, plan.not_from_hours)
        if plan.clean_days:
            _read_day_rollups(reader, plan.clean_days)
    if plan.raw:
        _read_raw_events(reader, plan.raw)
    return sorted(reader.points.values(), key=lambda point: (point.start, str(point.key)))


# `usage_series`' steps ----------------------------------------------------------------------

_Span = tuple[datetime, datetime]  # a [start, end) range of aware UTC datetimes


def _checked_arguments(
    since: datetime, until: datetime, bucket: str, group_by: str | tuple[str, ...] | None, filters: dict | None
) -> tuple[tuple[str, ...], dict[str, Any]]:
    """`usage_series`' arguments checked: the `group_by` names as a tuple, and the filters
    (`{}` for None). Raises ValueError as `usage_series` documents."""
    if bucket not in BUCKETS:
        raise ValueError(f"unknown bucket {bucket!r}")
    dimensions = _dimensions(group_by)
    if since.tzinfo is None or until.tzinfo is None:
        raise ValueError("since and until must be aware datetimes")
    filters = filters or {}
    if unknown := set(filters) - set(FILTERS):
        raise ValueError(f"unknown filters {sorted(unknown)}")
    return dimensions, filters


def _dimensions(group_by: str | tuple[str, ...] | None) -> tuple[str, ...]:
    """The names of `group_by` as a tuple (empty: not split); ValueError for an unknown one."""
    dimensions = (group_by,) if isinstance(group_by, str) else tuple(group_by or ())
    if any(name not in GROUP_BY for name in dimensions):
        raise ValueError(f"unknown group_by {group_by!r}")
    return dimensions


@dataclass(slots=True)
class _SourcePlan:
    """Where `usage_series` reads each part of [since, until) from (all [start, end) in UTC)."""

    whole_hours: _Span | None = None  # the whole hours read from rollups; None: there are none
    not_from_hours: list[_Span] = field(default_factory=list)  # inside whole_hours, read elsewhere
    clean_days: list[_Span] = field(default_factory=list)  # whole clean days, from the day rollups
    raw: list[_Span] = field(default_factory=list)  # from the raw events


def _plan_sources(since: datetime, until: datetime, bucket: str) -> _SourcePlan:
    """Plan the ranges: whole clean days (for the day and range buckets) from the day rollups,
    the other whole clean hours from the hourly rollups, and the raw events for the gaps (dirty
    hours, and partial hours at either end). Two queries: the watermark and the dirty hours."""
    first_full, last_full_end = _whole_hours(since, until)
    dirty = list(
        UsageRollupDirtyHour.objects.filter(hour__gte=first_full, hour__lt=last_full_end)
        .order_by("hour")
        .values_list("hour", flat=True)
    )
    if first_full >= last_full_end:  # no whole hour inside: all raw
        return _SourcePlan(raw=[(since, until)])
    dirty_ranges = _ranges(dirty)
    clean_days = _clean_days(first_full, last_full_end, dirty) if bucket != "hour" else []
    raw = [(since, first_full)] if since < first_full else []
    raw.extend(dirty_ranges)
    if last_full_end < until:
        raw.append((last_full_end, until))
    return _SourcePlan(
        whole_hours=(first_full, last_full_end),
        not_from_hours=[*dirty_ranges, *clean_days],
        clean_days=clean_days,
        raw=raw,
    )


def _whole_hours(since: datetime, until: datetime) -> _Span:
    """The whole UTC hours inside [since, until), as [first_full, last_full_end) (empty when
    first_full >= last_full_end); before the retention watermark, where raw events are gone,
    widened to the partial hours at the ends, which are then read whole from the rollups."""
    first_full = hour_floor(since) if hour_floor(since) == since else hour_floor(since) + HOUR
    last_full_end = hour_floor(until)
    purged_before = _purged_before()
    if purged_before is not None:
        if since < purged_before:
            first_full = hour_floor(since)
        if until <= purged_before and last_full_end < until:
            last_full_end += HOUR
    return first_full, last_full_end


def _clean_days(first_full: datetime, last_full_end: datetime, dirty: list[datetime]) -> list[_Span]:
    """The whole UTC days inside [first_full, last_full_end) with no dirty hour, as merged runs."""
    dirty_days = {day_floor(hour) for hour in dirty}
    day_ranges: list[_Span] = []
    day = day_floor(first_full) if day_floor(first_full) == first_full else day_floor(first_full) + DAY
    while day + DAY <= last_full_end:
        if day not in dirty_days:
            if day_ranges and day_ranges[-1][1] == day:
                day_ranges[-1] = (day_ranges[-1][0], day + DAY)
            else:
                day_ranges.append((day, day + DAY))
        day += DAY
    return day_ranges


@dataclass(slots=True)
class _SeriesReader:
    """One `usage_series` call's reading: what every source is narrowed and grouped by, and the
    points (by bucket start and key) that each source's sums are merged into."""

    since: datetime
    trunc: Any  # TruncHour, TruncDay, or None for the "range" bucket
    split: list[str]  # the columns the points are split by
    filters: dict[str, Any]
    user: Any
    points: dict[tuple[datetime, Any], UsagePoint] = field(default_factory=dict)

    def rows(self, model: type[Model]) -> QuerySet:
        """The rows of `model` that the user may read, narrowed by the filters."""
        return _scoped(_readable(model, self.user), self.filters)

    def merge(self, rows: QuerySet, column: str, sums: dict[str, Any]) -> None:
        """Group `rows` by bucket (of their time `column`) and split, sum them, merge into the points."""
        grouped = _bucketed(rows, self.trunc, column, self.split).annotate(**sums).order_by()
        _merge(self.points, grouped, self.split, self.since)


def _read_hour_rollups(reader: _SeriesReader, whole_hours: _Span, not_from_hours: list[_Span]) -> None:
    """Read the hourly rollups of `whole_hours` but `not_from_hours` (dirty hours, clean days)."""
    start, end = whole_hours
    hour_rows = reader.rows(UsageRollup).filter(hour__gte=start, hour__lt=end)
    for skip_start, skip_end in not_from_hours:
        hour_rows = hour_rows.exclude(hour__gte=skip_start, hour__lt=skip_end)
    reader.merge(hour_rows, "hour", _rollup_sums())


def _read_day_rollups(reader: _SeriesReader, clean_days: list[_Span]) -> None:
    """Read the day rollups of `clean_days`."""
    reader.merge(reader.rows(UsageRollupDay).filter(_in_spans("day", clean_days)), "day", _rollup_sums())


def _read_raw_events(reader: _SeriesReader, spans: list[_Span]) -> None:
    """Read the raw usage events of `spans`."""
    reader.merge(reader.rows(UsageEvent).filter(_in_spans("created_at", spans)), "created_at", _event_sums())


def _in_spans(column: str, spans: list[_Span]) -> Q:
    """`column` inside any of `spans`."""
    condition = Q()
    for start, end in spans:
        condition |= Q(**{f"{column}__gte": start, f"{column}__lt": end})
    return condition


def _bucketed(queryset: QuerySet, trunc, column: str, split: list[str]) -> QuerySet:
    """`queryset.values(...)` grouping on the bucket start (none for the "range" bucket) and `split`."""
    if trunc is None:
        return queryset.values(*split)
    return queryset.annotate(bucket_start=trunc(column, tzinfo=UTC)).values("bucket_start", *split)


def _merge(
    points: dict[tuple[datetime, Any], UsagePoint], rows: Iterable[dict], split: list[str], since: datetime
) -> None:
    for row in rows:
        start = row["bucket_start"].astimezone(UTC) if "bucket_start" in row else since
        key = (row[split[0]] if len(split) == 1 else tuple(row[column] for column in split)) if split else None
        point = points.get((start, key))
        if point is None:
            point = points[(start, key)] = UsagePoint(start=start, key=key)
        point.add(row)
