"""Refused requests as usage events, with flood protection (SPEC §7: every request is a usage event).

A request that aigw itself refuses (401 missing, unknown, revoked or expired key; 403; 404 model;
400 body; 429 token quota, budget, TPM, RPM or too many invalid keys; 503 a dependency down) is
a usage event with its status and error code, zero tokens and zero cost, and no provider. It is
handed to the same batched writer as every other event (`usage.recorder.UsageRecorder.record`):
never a synchronous insert on the request path.

A storm of refusals must not become a storm of rows. Per process, per UTC minute, per subject
(the API key, or the client address when no key was found) and error code, the first
`AIGW_REFUSAL_EVENTS_PER_MINUTE` refusals (default 60) are one event each; every further one
of that minute is counted in one aggregate event (`requests` = how many, request id
`agg_<hex>`, the first one's time and attribution), which is queued when the minute is over (or
at `flush`). So counts of requests stay exact: they sum `requests`. Memory is bounded: past
`MAX_SUBJECTS` subjects in one minute, further subjects are counted per error code only, in an
aggregate without key or address.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

MAX_SUBJECTS = 10_000  # distinct (subject, error code) pairs counted per minute and process
_UNATTRIBUTED = ("resource_group_id", "gateway_id", "api_key_id")


def _minute(instant: datetime) -> datetime:
    return instant.replace(second=0, microsecond=0)


class RefusalLog:
    """Turns refusals into usage events for `record` (a callable taking one event dict), at most
    `per_minute` single events per subject and error code per UTC minute, the rest aggregated.

    One per data plane process; used from its event loop only (not thread-safe)."""

    def __init__(self, record: Callable[[dict], None], *, per_minute: int, max_subjects: int = MAX_SUBJECTS) -> None:
        self._record = record
        self._per_minute = max(per_minute, 0)
        self._max_subjects = max_subjects
        self._current: datetime | None = None  # the UTC minute being counted
        self._counts: dict[tuple[str, str], int] = {}
        self._aggregates: dict[tuple[str, str], dict] = {}
        self._timer: asyncio.TimerHandle | None = None

    def refuse(self, event: dict) -> None:
        """Record one refusal. `event`: its usage event fields (`request_id`, `created_at` aware
        UTC, `status_code`, `error_code`, `client_address`, and `api_key_id`, `gateway_id`,
        `resource_group_id`, `api_key_name`, `model_requested`… where known; tokens and cost
        zero). Queued at once, or counted in its minute's aggregate. Never raises, never waits."""
        minute = _minute(event["created_at"])
        if self._current is None or minute > self._current:
            self._emit()
            self._counts.clear()
            self._current = minute
        key_id = event.get("api_key_id")
        subject = (f"key:{key_id}" if key_id else f"address:{event.get('client_address', '')}", event["error_code"])
        if subject not in self._counts and len(self._counts) >= self._max_subjects:
            subject = ("*", event["error_code"])
        count = self._counts[subject] = self._counts.get(subject, 0) + 1
        if count <= self._per_minute:
            self._record(event)
            return
        aggregate = self._aggregates.get(subject)
        if aggregate is None:
            aggregate = dict(event, request_id="agg_" + uuid.uuid4().hex, requests=0, latency_ms=0)
            if subject[0] == "*":
                aggregate.update(dict.fromkeys(_UNATTRIBUTED), api_key_name="", client_address="", model_requested="")
            self._aggregates[subject] = aggregate
            self._arm()
        elif aggregate["model_requested"] != event.get("model_requested", ""):
            aggregate["model_requested"] = ""  # refusals for several models
        aggregate["requests"] += 1

    @property
    def aggregated(self) -> int:
        """Refusals counted in aggregates not yet queued."""
        return sum(aggregate["requests"] for aggregate in self._aggregates.values())

    def flush(self) -> None:
        """Queue the aggregates counted so far (at shutdown, or when a test wants them now).
        The minute's counts are kept: its later refusals start new aggregates."""
        self._emit()

    def _emit(self) -> None:
        aggregates, self._aggregates = self._aggregates, {}
        for aggregate in aggregates.values():
            self._record(aggregate)

    def _arm(self) -> None:
        """Queue the aggregates once the minute is over, also when no further refusal comes."""
        if self._timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no event loop (a script): queued by the next minute's first refusal, or flush
        self._timer = loop.call_later(60.0 - time.time() % 60.0 + 0.01, self._minute_over)

    def _minute_over(self) -> None:
        self._timer = None
        if self._current is not None and _minute(datetime.now(UTC)) > self._current:
            self._emit()
            self._counts.clear()
            self._current = None
        elif self._aggregates:
            self._arm()

    def close(self) -> None:
        """Queue what is counted and stop the timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._emit()
