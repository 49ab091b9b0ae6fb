"""Writes usage events in batches, off the request path, without losing them.

The data plane hands each finished request to `UsageRecorder.record`, which appends the event
to this process's spool file (one JSON line, flushed to the operating system: it survives the
process being killed) and to an in-memory queue. One writer task drains whatever has
accumulated and inserts it with one `bulk_create`; under load batches grow on their own, when
idle each event is written within milliseconds. Once everything queued is in the database the
spool file is emptied. `recover` (at start-up) inserts the events left in the spool files of
processes that died; events are unique by request id, so an event written twice is kept once.
A batch the database refuses is retried row by row so one bad row cannot lose the others.
"""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import orjson
from asgiref.sync import sync_to_async
from django.db import DatabaseError, close_old_connections

from usage.models import UsageEvent
from usage.rollups import insert_events

log = logging.getLogger(__name__)

MAX_BATCH = 500


def _write(rows: list[dict]) -> None:
    close_old_connections()
    try:
        insert_events([UsageEvent(**row) for row in rows])
        return
    except DatabaseError:
        log.exception("usage batch of %d failed; writing row by row", len(rows))
    for row in rows:
        try:
            insert_events([UsageEvent(**row)])
        except DatabaseError:
            log.exception("usage event %s could not be written", row.get("request_id"))


def _encode(row: dict) -> bytes:
    def default(value):
        if isinstance(value, Decimal):
            return str(value)
        raise TypeError

    return orjson.dumps(row, default=default) + b"\n"


def _decode(line: bytes) -> dict:
    row = orjson.loads(line)
    row["created_at"] = datetime.fromisoformat(row["created_at"])
    row["cost_usd"] = Decimal(row["cost_usd"])
    return row


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def spool_dir() -> Path:
    from django.conf import settings

    return Path(settings.DATA_DIR) / "usage-spool"


def recover(directory: Path | None = None) -> int:
    """Insert the events in spool files of processes that are gone; returns how many lines were
    replayed. Safe to run in several processes at once: a file is claimed by renaming it."""
    directory = directory or spool_dir()
    if not directory.exists():
        return 0
    replayed = 0
    for path in directory.glob("*.jsonl"):
        pid = int(path.stem.split("-")[0]) if path.stem.split("-")[0].isdigit() else 0
        if pid == os.getpid() or (pid and _pid_alive(pid)):
            continue
        claimed = path.with_suffix(f".recovering-{os.getpid()}")
        try:
            path.rename(claimed)
        except FileNotFoundError:
            continue  # another process claimed it
        rows = [_decode(line) for line in claimed.read_bytes().splitlines() if line.strip()]
        for start in range(0, len(rows), MAX_BATCH):
            _write(rows[start : start + MAX_BATCH])
        replayed += len(rows)
        claimed.unlink()
    if replayed:
        log.warning("recovered %d usage events from spool files of stopped processes", replayed)
    return replayed


class UsageRecorder:
    """Batches usage events (dicts of `UsageEvent` fields) into the database, spooled on disk."""

    def __init__(self, directory: Path | None = None) -> None:
        self._queue: asyncio.Queue[dict] = asyncio.Queue()
        self._writer: asyncio.Task | None = None
        self._write = sync_to_async(_write, thread_sensitive=True)
        self._directory = directory or spool_dir()
        self._directory.mkdir(parents=True, exist_ok=True)
        self._spool_path = self._directory / f"{os.getpid()}-{id(self)}.jsonl"
        self._spool = open(self._spool_path, "ab", buffering=0)  # noqa: SIM115 - closed in close()
        self._recovered = False

    def record(self, row: dict) -> None:
        """Spool and queue one usage event; never blocks on the database and never raises."""
        try:
            self._spool.write(_encode(row))
        except (OSError, TypeError):
            log.exception("usage event %s could not be spooled", row.get("request_id"))
        self._queue.put_nowait(row)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        if not self._recovered:
            self._recovered = True
            try:
                await sync_to_async(recover, thread_sensitive=True)(self._directory)
            except Exception:
                log.exception("recovering spooled usage events failed")
        while True:
            rows = [await self._queue.get()]
            while len(rows) < MAX_BATCH and not self._queue.empty():
                rows.append(self._queue.get_nowait())
            try:
                await self._write(rows)
                if self._queue.empty():
                    self._spool.truncate(0)  # everything spooled so far is in the database
            finally:
                for _ in rows:
                    self._queue.task_done()

    async def flush(self) -> None:
        """Wait until every queued event is written."""
        if self._writer is not None and not self._writer.done():
            await self._queue.join()

    async def close(self) -> None:
        """Write what is queued, then stop the writer and remove the (empty) spool file."""
        await self.flush()
        if self._writer is not None:
            self._writer.cancel()
        self._spool.close()
        if self._queue.empty():
            self._spool_path.unlink(missing_ok=True)
