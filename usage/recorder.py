"""Writes usage events in batches, off the request path.

The data plane hands each finished request to `UsageRecorder.record`, which only appends to an
in-memory queue. One writer task drains whatever has accumulated and inserts it with one
`bulk_create`; under load batches grow on their own, when idle each event is written within
milliseconds. `close` (on server shutdown) writes what is left. A batch the database refuses is
retried row by row so one bad row cannot lose the others.
"""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import sync_to_async

log = logging.getLogger(__name__)

MAX_BATCH = 500


def _write(rows: list[dict]) -> None:
    from django.db import DatabaseError, close_old_connections, transaction

    from usage.models import UsageEvent

    close_old_connections()
    try:
        with transaction.atomic():
            UsageEvent.objects.bulk_create([UsageEvent(**row) for row in rows])
        return
    except DatabaseError:
        log.exception("usage batch of %d failed; writing row by row", len(rows))
    for row in rows:
        try:
            with transaction.atomic():
                UsageEvent.objects.create(**row)
        except DatabaseError:
            log.exception("usage event %s could not be written", row.get("request_id"))


class UsageRecorder:
    """Batches usage events (dicts of `UsageEvent` fields) into the database."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[dict] = asyncio.Queue()
        self._writer: asyncio.Task | None = None
        self._write = sync_to_async(_write, thread_sensitive=True)

    def record(self, row: dict) -> None:
        """Queue one usage event; never blocks and never raises."""
        self._queue.put_nowait(row)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            rows = [await self._queue.get()]
            while len(rows) < MAX_BATCH and not self._queue.empty():
                rows.append(self._queue.get_nowait())
            try:
                await self._write(rows)
            finally:
                for _ in rows:
                    self._queue.task_done()

    async def flush(self) -> None:
        """Wait until every queued event is written."""
        if self._writer is not None and not self._writer.done():
            await self._queue.join()

    async def close(self) -> None:
        """Write what is queued, then stop the writer."""
        await self.flush()
        if self._writer is not None:
            self._writer.cancel()
