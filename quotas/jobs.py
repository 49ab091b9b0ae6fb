"""The limits engine's background jobs (SPEC §8): close refresh periods, mark expired API keys,
reconcile the shared counters with the usage events.

Plain functions of an aware UTC `now`. Celery tasks (`quotas/tasks.py`) and the embedded
in-process runner (`gateway/scheduler.py`) call them with the current time; tests call them
with any time they like. Enforcement never waits for them: the data plane recognises a new
window from the clock on each request and rejects an expired key at once.

Each job is idempotent: it may run late, twice, or at the same moment in two workers, and the
records come out the same. Rows are written with INSERT … ON CONFLICT DO NOTHING under
`LimitPeriod`'s unique (level, entity, period, window start) constraint, and changed only by
conditional UPDATEs (`closed = false`), so a closed period is never rewritten.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import chain

from django.conf import settings
from django.utils import timezone

from core.redis import is_cluster, sync_client
from gateway.models import Gateway
from keys.models import ApiKey
from keys.services import api_keys_mark_expired
from quotas.counters import RedisCounters, counter_name, slot_groups, usd_to_units, window_tag
from quotas.engine import LimitEngine
from quotas.models import Level, LimitPeriod, RefreshPeriod, SpendBudget, TokenQuota
from quotas.periods import window_end, window_start
from quotas.selectors import Used, used_in_window
from usage import jobs as usage_jobs
from usage.recorder import recover, recover_intents

log = logging.getLogger(__name__)

# How far back `close_periods` writes missed windows: a job that was down for longer leaves the
# older windows unrecorded (their usage events are still there).
LOOK_BACK = timedelta(days=400)

# How many counters `reconcile_counters` compares per Redis round trip.
RECONCILE_BATCH = 500

# Raise each existing counter to its database value when it is below it; never lower one, never
# create one (the data plane seeds missing counters itself). Returns how many were raised.
_RAISE_TO = """
local raised = 0
for i = 1, #KEYS do
  local raw = redis.call('GET', KEYS[i])
  if raw then
    local delta = tonumber(ARGV[i]) - tonumber(raw)
    if delta > 0 then
      redis.call('INCRBY', KEYS[i], delta)
      raised = raised + 1
    end
  end
end
return raised
"""


@dataclass(frozen=True, slots=True)
class _Owner:
    """One key, gateway or group with a limit of one refresh period; `since`: when its oldest
    such limit was created (aware UTC)."""

    level: str
    entity_id: int
    refresh_period: str
    since: datetime

    @property
    def rows(self):
        return LimitPeriod.objects.filter(
            level=self.level, entity_id=self.entity_id, refresh_period=self.refresh_period
        )


def _require_aware(now: datetime) -> None:
    if timezone.is_naive(now):
        raise ValueError("now must be an aware datetime (UTC)")


def _enforced_budgets():
    return SpendBudget.objects.filter(active=True, archived_at__isnull=True)


_OWNER_FIELDS = ("api_key_id", "gateway_id", "resource_group_id", "refresh_period", "created_at")


def _groups_of_owners() -> dict[tuple[str, int], int]:
    """(level, entity id) → resource group id of every owner of a token quota or spend budget
    (whose counters carry that group's hash tag): three queries, whatever the number of owners."""
    groups: dict[tuple[str, int], int] = {}
    key_ids, gateway_ids = set(), set()
    for limit in chain(TokenQuota.objects.only(*_OWNER_FIELDS), SpendBudget.objects.only(*_OWNER_FIELDS)):
        if limit.resource_group_id is not None:
            groups[(str(Level.RESOURCE_GROUP), limit.resource_group_id)] = limit.resource_group_id
        elif limit.gateway_id is not None:
            gateway_ids.add(limit.gateway_id)
        elif limit.api_key_id is not None:
            key_ids.add(limit.api_key_id)
    for pk, group_id in Gateway.objects.filter(pk__in=gateway_ids).values_list("pk", "resource_group_id"):
        groups[(str(Level.GATEWAY), pk)] = group_id
    for pk, group_id in ApiKey.objects.filter(pk__in=key_ids).values_list("pk", "gateway__resource_group_id"):
        groups[(str(Level.API_KEY), pk)] = group_id
    return groups


def _owners(*, periodic: bool) -> list[_Owner]:
    """Every owner of a token quota or an enforced spend budget, once per refresh period, in a
    stable order (so concurrent runs touch rows in the same order). `periodic`: leave out `none`."""
    quotas = TokenQuota.objects.only(*_OWNER_FIELDS)
    budgets = _enforced_budgets().only(*_OWNER_FIELDS)
    if periodic:
        quotas = quotas.exclude(refresh_period=RefreshPeriod.NONE)
        budgets = budgets.exclude(refresh_period=RefreshPeriod.NONE)
    since: dict[tuple[str, int, str], datetime] = {}
    for limit in chain(quotas, budgets):
        key = (str(limit.level), limit.entity_id, limit.refresh_period)
        since[key] = min(since.get(key, limit.created_at), limit.created_at)
    return [_Owner(*key, since=created) for key, created in sorted(since.items())]


def _windows(owner: _Owner, now: datetime) -> list[tuple[datetime, datetime]]:
    """The (start, end) of each window from the one in which the limit was created (at most
    LOOK_BACK ago: always more than one window) to the one containing `now` (last)."""
    period = owner.refresh_period
    start = window_start(period, max(owner.since, now - LOOK_BACK))
    windows = []
    while start <= now:
        end = window_end(period, start)
        assert end is not None  # `none` owners never get here
        windows.append((start, end))
        start = end
    return windows


def _used(owner: _Owner, start: datetime, end: datetime) -> Used:
    return used_in_window(level=owner.level, entity_id=owner.entity_id, since=start, until=end)


def _write_open(owner: _Owner, start: datetime, end: datetime, used: Used) -> None:
    """Create or update the open row of the window [start, end); a closed row is left alone."""
    numbers = {"used_tokens": used.tokens, "spend_usd": used.usd}
    updated = owner.rows.filter(window_start=start, closed=False).update(
        window_end=end, updated_at=timezone.now(), **numbers
    )
    if not updated:
        LimitPeriod.objects.bulk_create(
            [
                LimitPeriod(
                    level=owner.level,
                    entity_id=owner.entity_id,
                    refresh_period=owner.refresh_period,
                    window_start=start,
                    window_end=end,
                    closed=False,
                    **numbers,
                )
            ],
            ignore_conflicts=True,
        )


def _close(owner: _Owner, past: list[tuple[datetime, datetime]]) -> int:
    """Write the final numbers of every window in `past` that is not closed yet; returns how
    many were not closed when this call looked."""
    if not past:
        return 0
    in_range = owner.rows.filter(window_start__gte=past[0][0], window_start__lte=past[-1][0])
    done = set(in_range.filter(closed=True).values_list("window_start", flat=True))
    final = {start: (end, _used(owner, start, end)) for start, end in past if start not in done}
    if not final:
        return 0
    LimitPeriod.objects.bulk_create(
        [
            LimitPeriod(
                level=owner.level,
                entity_id=owner.entity_id,
                refresh_period=owner.refresh_period,
                window_start=start,
                window_end=end,
                used_tokens=used.tokens,
                spend_usd=used.usd,
                closed=True,
            )
            for start, (end, used) in final.items()
        ],
        ignore_conflicts=True,
    )
    # Rows that existed as open ones (written while their window was current) are closed with a
    # conditional UPDATE: whichever run gets there first writes the numbers, the other none.
    still_open = in_range.filter(closed=False).values_list("window_start", flat=True)
    for start in [s for s in still_open if s in final]:
        end, used = final[start]
        owner.rows.filter(window_start=start, closed=False).update(
            window_end=end, used_tokens=used.tokens, spend_usd=used.usd, closed=True, updated_at=timezone.now()
        )
    return len(final)


def close_periods(now: datetime) -> int:
    """Record the refresh periods of every token quota and enforced spend budget up to `now`.

    For each owner with a refresh period other than `none`: every window that ended at or before
    `now`, from the window in which the limit was created (at most LOOK_BACK back, 400 days),
    gets a closed `LimitPeriod` row with the tokens and cost (USD) of the usage events created
    in it; the window containing `now` gets an open row with its numbers so far. A closed row
    is never changed again. Safe to run late, twice or concurrently.

    Returns how many windows this run found not yet closed (0 when everything was up to date).

    Raises:
        ValueError: when `now` is a naive datetime.
    """
    _require_aware(now)
    closed = 0
    for owner in _owners(periodic=True):
        *past, (start, end) = _windows(owner, now)
        closed += _close(owner, past)
        _write_open(owner, start, end, _used(owner, start, end))
    if closed:
        log.info("closed %d limit period(s) up to %s", closed, now.isoformat())
    return closed


def mark_expired_keys(now: datetime) -> int:
    """Set the status of active API keys whose `expires_at` is at or before `now` to `expired`.

    One conditional UPDATE (healthchecks' claim pattern), so two workers never both change a
    key. Display only: the data plane rejects an expired key at once, whatever this job did.
    Suspended and revoked keys keep their status.

    Returns how many keys changed.

    Raises:
        ValueError: when `now` is a naive datetime.
    """
    _require_aware(now)
    count = api_keys_mark_expired(now=now)
    if count:
        log.info("marked %d API key(s) expired", count)
    return count


def reconcile_counters(now: datetime) -> int:
    """Bring the shared Redis counters of the current windows up to the usage events.

    For each token quota (`tokens`) and enforced spend budget (`spend`, in 1e-10 USD units)
    the counter of the window containing `now` is compared with the sum of the usage events of
    that window. A counter below it (increments lost, e.g. Redis restored from an old snapshot)
    is raised to it in one atomic step; a higher one is left alone (in-flight reservations and
    events not written yet make it higher); a missing one is not created (the data plane seeds
    it). The open `LimitPeriod` row of each periodic owner gets the database numbers.

    Does nothing with in-process counters (`REDIS_URL` unset).

    Returns how many counters were raised.

    Raises:
        ValueError: when `now` is a naive datetime.
        redis.RedisError: when Redis cannot be reached.
    """
    _require_aware(now)
    if not settings.REDIS_URL:
        return 0

    budgets = {(str(b.level), b.entity_id, b.refresh_period) for b in _enforced_budgets().only(*_OWNER_FIELDS)}
    groups = _groups_of_owners()
    quotas = {(str(q.level), q.entity_id, q.refresh_period) for q in TokenQuota.objects.only(*_OWNER_FIELDS)}
    targets: list[tuple[str, int]] = []
    for owner in _owners(periodic=False):
        key = (owner.level, owner.entity_id, owner.refresh_period)
        start, end = window_start(owner.refresh_period, now), window_end(owner.refresh_period, now)
        used = used_in_window(level=owner.level, entity_id=owner.entity_id, since=start)
        tag = window_tag(owner.refresh_period, now)
        group_id = groups.get((owner.level, owner.entity_id))
        if group_id is not None and key in quotas:
            name = counter_name("tokens", owner.level, owner.entity_id, tag, group_id=group_id)
            targets.append((name, used.tokens))
        if group_id is not None and key in budgets:
            name = counter_name("spend", owner.level, owner.entity_id, tag, group_id=group_id)
            targets.append((name, usd_to_units(used.usd)))
        if end is not None:
            _write_open(owner, start, end, used)

    client = sync_client(settings.REDIS_URL)
    try:
        raise_to = client.register_script(_RAISE_TO)
        raised = 0
        by_slot = slot_groups([name for name, _ in targets], is_cluster(client))
        for indexes in by_slot:
            for i in range(0, len(indexes), RECONCILE_BATCH):
                batch = [targets[index] for index in indexes[i : i + RECONCILE_BATCH]]
                raised += int(raise_to(keys=[name for name, _ in batch], args=[value for _, value in batch]))
    finally:
        client.close()
    if raised:
        log.warning("raised %d counter(s) that were below the usage events (lost increments)", raised)
    return raised


def recover_usage(now: datetime) -> int:
    """Write the usage events left in this host's spool files by processes that are gone, and
    meter their requests that were forwarded but have no outcome as `interrupted` usage events,
    charged at the reserved worst case (or the prompt estimate) and settled against the Redis
    counters (SPEC §3). The gateway processes do the same at start-up, after a database outage and
    every minute while busy; this job is the backstop for a host whose workers died and stay down.

    Returns how many interrupted events were written.

    Raises:
        ValueError: when `now` is a naive datetime.
        usage.recorder.DatabaseUnavailable: when the database cannot be reached (nothing is lost).
    """
    _require_aware(now)
    recover()
    interrupted = recover_intents()
    if interrupted and settings.REDIS_URL:

        async def settle() -> None:
            counters = RedisCounters(settings.REDIS_URL)
            try:
                await LimitEngine(counters).after_write(interrupted)
            finally:
                await counters.close()

        asyncio.run(settle())
    return len(interrupted)


JOBS = (
    ("mark_expired_keys", mark_expired_keys),
    ("close_periods", close_periods),
    ("reconcile_counters", reconcile_counters),
    ("recover_usage", recover_usage),
    ("rollup_usage", usage_jobs.rollup_usage),
    ("purge_usage_events", usage_jobs.purge_usage_events),
)


def run_all(now: datetime) -> dict[str, int | None]:
    """Run every job once at `now` (the embedded runner's round). A job that fails is logged
    and gives None; the others still run. Returns each job's result by name."""
    results: dict[str, int | None] = {}
    for name, job in JOBS:
        try:
            results[name] = job(now)
        except Exception:
            log.exception("background job %s failed", name)
            results[name] = None
    return results
