"""Writes usage events in batches, off the request path, without ever losing one (SPEC §3).

The data plane hands each finished request to `UsageRecorder.record`, which appends the event
to this process's spool file (one JSON line, flushed to the operating system: it survives the
process being killed) and to an in-memory queue. An event is stored only once its limits are
settled (the settle task given to `record`), so that a counter rebuilt from the database never
counts an event twice (see `quotas.counters`). One writer task drains whatever has
accumulated and inserts it with one `bulk_create`; under load batches grow on their own, when
idle each event is written within milliseconds. Once everything queued is in the database the
spool file is emptied.

When the database cannot be reached (a cut link, a restart, SQLite's lock held too long) the
batch stays at the head of the queue and is retried, with a backoff of 50 ms doubling to 2 s,
until it lands; events are written in the order they were recorded, and exactly once, since
they are unique by request id and a retried batch skips the ones already stored. While it
waits, the writer logs how many events are waiting and since when, every 10 s. Memory stays
bounded: past `AIGW_USAGE_MAX_QUEUED_EVENTS` waiting events, new ones go only to the spool file,
which is set aside and read back whole once the queue has drained. A row the
database refuses for what it holds (not for being unreachable) is written row by row so it
cannot hold up the others, and is kept in `<spool>/rejected/<pid>.jsonl` for an operator.
`recover` (at start-up, and after every outage) inserts the events left in the spool files of
processes that died.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from asgiref.sync import sync_to_async
from django.db import DatabaseError, InterfaceError, OperationalError, close_old_connections

from core.db import unreachable
from usage.models import UsageEvent
from usage.rollups import insert_events

log = logging.getLogger(__name__)

MAX_BATCH = 500
RETRY_FIRST_SECONDS = 0.05
RETRY_MAX_SECONDS = 2.0
BACKLOG_LOG_SECONDS = 10.0
CLOSE_TIMEOUT_SECONDS = 5.0
RECOVERING = ".recovering-"
INTENTS = ".intents.jsonl"  # a process's intents file: `<pid>-<n>.intents.jsonl`
RECOVER_EVERY_SECONDS = 60.0  # a busy process also recovers stopped processes' files this often
COMPACT_INTENTS_BYTES = 1 << 20  # an intents file past this size is rewritten with the open ones
INTERRUPTED = "interrupted"  # the error code of a request whose process died before its outcome


class DatabaseUnavailable(Exception):
    """The database could not be reached (Django's `OperationalError` or `InterfaceError`); the
    events are still in the spool and are written when it is back."""


def _reject(directory: Path, row: dict) -> None:
    rejected = directory / "rejected"
    rejected.mkdir(parents=True, exist_ok=True)
    with open(rejected / f"{os.getpid()}.jsonl", "ab") as file:
        file.write(_encode(row))


def _insert(events: list[UsageEvent]) -> int:
    try:
        return insert_events(events)
    except (OperationalError, InterfaceError) as exc:
        if not unreachable(exc):
            raise  # refused for what it holds: kept aside row by row
        raise DatabaseUnavailable(str(exc)) from exc


def _write(rows: list[dict], directory: Path) -> dict[str, int]:
    """Insert `rows` (dicts of `UsageEvent` fields); returns the usage-write generation each
    stored row was committed at, by request id (`usage.rollups.write_generation`). A row the
    database refuses is logged and kept in `directory/rejected/`. Raises DatabaseUnavailable,
    having written none or some of them (an event already stored is skipped when they are
    written again)."""
    close_old_connections()
    made: list[tuple[UsageEvent, dict]] = []
    for row in rows:
        try:
            made.append((UsageEvent(**row), row))
        except (TypeError, ValueError):
            log.exception("usage event %s is malformed; kept in %s/rejected", row.get("request_id"), directory)
            _reject(directory, row)
    try:
        generation = _insert([event for event, _ in made])
        return {event.request_id: generation for event, _ in made}
    except DatabaseUnavailable:
        raise
    except DatabaseError:
        log.exception("usage batch of %d failed; writing row by row", len(made))
    generations: dict[str, int] = {}
    for event, row in made:
        try:
            generations[event.request_id] = _insert([event])
        except DatabaseUnavailable:
            raise
        except DatabaseError:
            log.exception("usage event %s refused by the database; kept in %s/rejected", event.request_id, directory)
            _reject(directory, row)
    return generations


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


def _is_intents(path: Path) -> bool:
    return INTENTS in path.name


def _is_events(path: Path) -> bool:
    return (path.suffix == ".jsonl" or RECOVERING in path.name) and not _is_intents(path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner(path: Path) -> int:
    """The pid that wrote (`<pid>-<n>.jsonl`) or is replaying (`….recovering-<pid>`) a spool file."""
    digits = path.name.rsplit(RECOVERING, 1)[1] if RECOVERING in path.name else path.name.split("-")[0]
    return int(digits) if digits.isdigit() else 0


def spool_dir() -> Path:
    """`DATA_DIR/usage-spool`, where every process keeps its spool file."""
    from django.conf import settings

    return Path(settings.DATA_DIR) / "usage-spool"


@dataclass(frozen=True)
class SpoolFile:
    """One spool file as `spool_files` sees it: its path, the pid that writes (or replays) it,
    whether that process runs, how many events it holds and the oldest one's time (UTC)."""

    path: Path
    pid: int
    alive: bool
    events: int
    oldest: datetime | None


def spool_files(directory: Path | None = None) -> list[SpoolFile]:
    """The spool files in `directory` (default `spool_dir()`), by name. A running process's file
    holds events not yet written and, until its next write lands, some that were; a stopped
    process's file holds events that `recover` will write. Files under `rejected/` are not listed."""
    directory = directory or spool_dir()
    if not directory.exists():
        return []
    files = []
    for path in sorted(directory.iterdir()):
        if not _is_events(path):
            continue
        try:
            lines = [line for line in path.read_bytes().splitlines() if line.strip()]
        except FileNotFoundError:
            continue
        pid = _owner(path)
        oldest = min((_decode(line)["created_at"] for line in lines), default=None)
        files.append(SpoolFile(path, pid, bool(pid) and _pid_alive(pid), len(lines), oldest))
    return files


def _replay(path: Path, directory: Path) -> int:
    """Write every event of the spool file `path`, then remove it; returns how many lines it had.
    Raises DatabaseUnavailable, leaving the file (events already written are skipped next time)."""
    rows = [_decode(line) for line in path.read_bytes().splitlines() if line.strip()]
    for start in range(0, len(rows), MAX_BATCH):
        _write(rows[start : start + MAX_BATCH], directory)
    path.unlink()
    return len(rows)


def _claim(path: Path) -> Path | None:
    """Rename the spool or intents file `path` of a process that is gone to
    `<name>.recovering-<our pid>`; None if its process runs or another process claimed it."""
    pid = _owner(path)
    if pid == os.getpid() or (pid and _pid_alive(pid)):
        return None
    claimed = path.with_name(f"{path.name.split(RECOVERING)[0]}{RECOVERING}{os.getpid()}")
    try:
        path.rename(claimed)
    except FileNotFoundError:
        return None
    return claimed


def _interrupted_row(intent: dict) -> dict:
    """The usage event of a request whose process died after it was forwarded: the intent's
    event, charged what the intent says (its reserved worst case, or the prompt estimate),
    status 500, error code `interrupted`."""
    row = dict(intent["event"])
    row["created_at"] = datetime.fromisoformat(row["created_at"])
    charge = intent["charge"]
    row.update(
        status_code=500,
        error_code=INTERRUPTED,
        input_tokens=charge["input_tokens"],
        output_tokens=charge["output_tokens"],
        total_tokens=charge["input_tokens"] + charge["output_tokens"],
        cost_usd=Decimal(charge["cost_usd"]),
    )
    return row


def recover_intents(directory: Path | None = None) -> list[tuple[list[dict], int]]:
    """Turn the intents of processes that are gone, whose request has no usage event, into
    `interrupted` usage events (SPEC §3: a request that reached the provider is metered even if
    its worker dies). Run after `recover`: an intents file waits while a spool file of the same
    process is still there, so that no real event is replaced by a worst case.

    Returns, per event written, the intent's limit counters (dicts of
    `quotas.counters.Written` fields, `settled_in` "!": never settled) and the usage-write
    generation it was stored at, for the caller to settle against the counters
    (`quotas.engine.LimitEngine.after_write`). Raises DatabaseUnavailable, leaving the file."""
    directory = directory or spool_dir()
    if not directory.exists():
        return []
    settled: list[tuple[list[dict], int]] = []
    paths = sorted(directory.iterdir())
    waiting = {_owner(path) for path in paths if _is_events(path)}
    for path in paths:
        if not _is_intents(path) or _owner(path) in waiting or (claimed := _claim(path)) is None:
            continue
        original = path.with_name(path.name.split(RECOVERING)[0])
        intents = {}
        for line in claimed.read_bytes().splitlines():
            if line.strip():
                intent = orjson.loads(line)
                intents[intent["event"]["request_id"]] = intent
        try:
            settled += _write_interrupted(list(intents.values()), directory)
        except DatabaseUnavailable:
            claimed.rename(original)
            raise
        claimed.unlink()
    if settled:
        log.warning("metered %d requests of stopped processes as interrupted (their worker died)", len(settled))
    return settled


def _write_interrupted(intents: list[dict], directory: Path) -> list[tuple[list[dict], int]]:
    close_old_connections()
    out: list[tuple[list[dict], int]] = []
    for start in range(0, len(intents), MAX_BATCH):
        batch = intents[start : start + MAX_BATCH]
        try:
            stored = set(
                UsageEvent.objects.filter(request_id__in=[i["event"]["request_id"] for i in batch]).values_list(
                    "request_id", flat=True
                )
            )
        except (OperationalError, InterfaceError) as exc:
            raise DatabaseUnavailable(str(exc)) from exc
        open_intents = [i for i in batch if i["event"]["request_id"] not in stored]
        generations = _write([_interrupted_row(i) for i in open_intents], directory)
        out += [
            (i["limits"], generations[i["event"]["request_id"]])
            for i in open_intents
            if i["event"]["request_id"] in generations
        ]
    return out


def recover(directory: Path | None = None) -> int:
    """Insert the events in spool files of processes that are gone; returns how many lines were
    replayed. Safe to run in several processes at once: a file is claimed by renaming it. Raises
    DatabaseUnavailable, leaving the file it was replaying in place for the next try."""
    directory = directory or spool_dir()
    if not directory.exists():
        return 0
    replayed = 0
    for path in sorted(directory.iterdir()):
        if not _is_events(path) or (claimed := _claim(path)) is None:
            continue
        original = path.with_name(path.name.split(RECOVERING)[0])
        try:
            replayed += _replay(claimed, directory)
        except DatabaseUnavailable:
            claimed.rename(original)  # left for whoever recovers next
            raise
    if replayed:
        log.warning("recovered %d usage events from spool files of stopped processes", replayed)
    return replayed


class UsageRecorder:
    """Batches usage events (dicts of `UsageEvent` fields) into the database, spooled on disk;
    one per data plane process. `backlog` is the number of events not yet in the database.

    An event recorded with the task that settles its limits (`record(row, settled=task)`) is
    written only once that task is done, so an event in the database is always settled; then
    `after_write` (if given) is awaited with, per such event, the task's result and the
    usage-write generation the event was stored at (see `quotas.engine.LimitEngine.after_write`).
    """

    def __init__(
        self,
        directory: Path | None = None,
        max_queued: int | None = None,
        after_write: Callable[[list[tuple[Any, int]]], Awaitable[None]] | None = None,
    ) -> None:
        from django.conf import settings

        self._max_queued = max_queued or settings.AIGW_USAGE_MAX_QUEUED_EVENTS
        self._spilled = 0  # events past max_queued: only in the spool file, read back from it
        self._replaying = 0  # events in the spool file being read back
        self._queue: asyncio.Queue[dict] = asyncio.Queue()
        self._pending: list[dict] = []  # the batch being written, kept until it lands
        self._writer: asyncio.Task | None = None
        self._write = sync_to_async(_write, thread_sensitive=True)
        self._replay = sync_to_async(_replay, thread_sensitive=True)
        self._recover = sync_to_async(recover, thread_sensitive=True)
        self._directory = directory or spool_dir()
        self._directory.mkdir(parents=True, exist_ok=True)
        self._spool_path = self._directory / f"{os.getpid()}-{id(self)}.jsonl"
        self._spool = open(self._spool_path, "ab", buffering=0)  # noqa: SIM115 - closed in close()
        self._recover_due = True
        self._recovered_at = time.monotonic()
        self._unavailable_since: float | None = None  # monotonic time of the first failed write
        self._logged_at = 0.0
        self._after_write = after_write
        self._settles: dict[str, asyncio.Future] = {}  # request id -> the task settling its limits
        self._recover_intents = sync_to_async(recover_intents, thread_sensitive=True)
        self._intents_path = self._directory / f"{os.getpid()}-{id(self)}{INTENTS}"
        self._intents = open(self._intents_path, "ab", buffering=0)  # noqa: SIM115 - closed in close()
        self._open_intents: dict[str, bytes] = {}  # request id -> its line, until its outcome
        self._intents_bytes = 0

    @property
    def backlog(self) -> int:
        """Events recorded by this process and not yet in the database."""
        return len(self._pending) + self._queue.qsize() + self._spilled + self._replaying

    def intend(self, request_id: str, intent: dict) -> None:
        """Write a request's intent before it is forwarded (SPEC §3: metered even if this process
        dies): `{"event": <its usage event so far>, "charge": {"input_tokens", "output_tokens",
        "cost_usd"}, "limits": [<quotas.counters.Written fields>], "lease_until": <ISO UTC>}`.
        One line in this process's intents file, written to the operating system at once;
        `record` of the request's event closes it. Never raises."""
        try:
            line = _encode(intent)
            self._intents.write(line)
        except (OSError, TypeError):
            log.exception("the intent of request %s could not be written", request_id)
            return
        self._open_intents[request_id] = line
        self._intents_bytes += len(line)
        if self._intents_bytes > COMPACT_INTENTS_BYTES:
            self._compact_intents()

    def _compact_intents(self) -> None:
        """Rewrite the intents file with the open intents only (the others have their event in
        the spool file or the database)."""
        fresh = self._intents_path.with_name(self._intents_path.name + ".new")
        lines = b"".join(self._open_intents.values())
        with open(fresh, "wb") as file:
            file.write(lines)
        os.replace(fresh, self._intents_path)
        self._intents.close()
        self._intents = open(self._intents_path, "ab", buffering=0)  # noqa: SIM115 - closed in close()
        self._intents_bytes = len(lines)

    def record(self, row: dict, settled: asyncio.Future | None = None) -> None:
        """Spool and queue one usage event; never blocks on the database and never raises.
        `settled`: the task settling the request's limits; the event is written after it."""
        try:
            self._spool.write(_encode(row))
        except (OSError, TypeError):
            log.exception("usage event %s could not be spooled", row.get("request_id"))
        if self._spilled or self.backlog >= self._max_queued:
            self._spilled += 1  # memory stays bounded; the spool file has it
        else:
            self._queue.put_nowait(row)
            if settled is not None:
                self._settles[row["request_id"]] = settled
        self._open_intents.pop(row["request_id"], None)  # its outcome is spooled
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._run())

    async def _recover_if_due(self) -> None:
        if not self._recover_due:
            return
        try:
            await self._recover(self._directory)
            interrupted = await self._recover_intents(self._directory)
            self._recover_due, self._recovered_at = False, time.monotonic()
            if interrupted and self._after_write is not None:
                await self._after_write(interrupted)
        except DatabaseUnavailable:
            pass  # tried again after the next write that lands
        except Exception:
            self._recover_due = False
            log.exception("recovering spooled usage events failed")

    def _waiting(self, error: DatabaseUnavailable) -> None:
        now = time.monotonic()
        if self._unavailable_since is None:
            self._unavailable_since = now
        if now - self._logged_at >= BACKLOG_LOG_SECONDS:
            self._logged_at = now
            log.error(
                "usage events wait for the database: %d in %s, unwritten for %.1f s (%s)",
                self.backlog,
                self._spool_path,
                now - self._unavailable_since,
                error,
            )

    def _landed(self) -> None:
        if self._unavailable_since is not None:
            log.warning(
                "usage events reach the database again after %.1f s; %d still queued",
                time.monotonic() - self._unavailable_since,
                self._queue.qsize(),
            )
            self._unavailable_since, self._logged_at, self._recover_due = None, 0.0, True

    async def _run(self) -> None:
        await self._recover_if_due()
        delay = RETRY_FIRST_SECONDS
        while True:
            if not self._pending:
                self._pending.append(await self._queue.get())
            while len(self._pending) < MAX_BATCH and not self._queue.empty():
                self._pending.append(self._queue.get_nowait())
            settling = [self._settles[r["request_id"]] for r in self._pending if r["request_id"] in self._settles]
            if settling:
                await asyncio.wait(settling)
            try:
                generations = await self._write(self._pending, self._directory)
            except DatabaseUnavailable as error:
                self._waiting(error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)
                continue
            await self._settled_written(self._pending, generations)
            written, self._pending = len(self._pending), []
            delay = RETRY_FIRST_SECONDS
            self._landed()
            if self._queue.empty():
                if self._spilled:
                    await self._read_back_spilled()
                else:
                    self._spool.truncate(0)  # everything spooled so far is in the database
            for _ in range(written):
                self._queue.task_done()
            if time.monotonic() - self._recovered_at > RECOVER_EVERY_SECONDS:
                self._recover_due = True
            await self._recover_if_due()

    async def _settled_written(self, rows: list[dict], generations: dict[str, int]) -> None:
        """Hand the settle results of the stored `rows` to `after_write` (errors are logged)."""
        pairs = []
        for row in rows:
            task = self._settles.pop(row["request_id"], None)
            generation = generations.get(row["request_id"])
            if task is None or generation is None or task.cancelled() or task.exception() is not None:
                continue
            pairs.append((task.result(), generation))
        if pairs and self._after_write is not None:
            try:
                await self._after_write(pairs)
            except Exception:
                log.exception("counting %d stored usage events in the limit counters failed", len(pairs))

    async def _read_back_spilled(self) -> None:
        """Write the events that went only to the spool file: it is set aside (new events go to a
        fresh one, and to memory again) and written whole, retried until the database takes it."""
        spilled = self._spool_path.with_name(f"{self._spool_path.stem}-spilled.jsonl")
        self._spool.close()
        self._spool_path.rename(spilled)
        self._spool = open(self._spool_path, "ab", buffering=0)  # noqa: SIM115 - closed in close()
        self._replaying, self._spilled = self._spilled, 0
        delay = RETRY_FIRST_SECONDS
        while True:
            try:
                await self._replay(spilled, self._directory)
                break
            except DatabaseUnavailable as error:
                self._waiting(error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)
        log.warning("usage events past the memory cap read back from %s: %d", spilled, self._replaying)
        self._replaying = 0
        self._landed()

    async def flush(self) -> None:
        """Wait until every queued event is written."""
        if self._writer is not None and not self._writer.done():
            await self._queue.join()

    async def close(self) -> None:
        """Write what is queued (waiting at most CLOSE_TIMEOUT_SECONDS for the database), then
        stop the writer; the spool file is removed if it is empty, else left for `recover`."""
        try:
            await asyncio.wait_for(self.flush(), CLOSE_TIMEOUT_SECONDS)
        except TimeoutError:
            log.error("%d usage events left in %s for the next process to write", self.backlog, self._spool_path)
        if self._writer is not None:
            self._writer.cancel()
        self._spool.close()
        if self.backlog == 0:
            self._spool_path.unlink(missing_ok=True)
        self._intents.close()
        if not self._open_intents:
            self._intents_path.unlink(missing_ok=True)
