"""The embedded default's background jobs: run inside the server process, no Celery worker.

When `settings.AIGW_IN_PROCESS_JOBS` is true (the default without `REDIS_URL`), the ASGI
lifespan starts one asyncio task that runs every job of `quotas.jobs` (mark expired keys, close
periods, reconcile counters) at start-up and then every `AIGW_IN_PROCESS_JOBS_INTERVAL_SECONDS`
(60 by default). The jobs run in a worker thread (asgiref `sync_to_async`, not the thread of
Django's sync views), so the event loop and the console are never blocked by them. They are
idempotent, so several server processes, or a Celery worker as well, may run them too.

    jobs = start_in_process_jobs()   # in lifespan.startup, inside the running loop
    ...
    await jobs.stop()                # in lifespan.shutdown
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections, connections
from django.utils import timezone

from quotas.jobs import run_all

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_SECONDS = 60.0


def _run_jobs_once() -> dict[str, int | None]:
    """One round of every job at the current time, in a worker thread; closes that thread's
    database connections afterwards so none is left open between rounds."""
    close_old_connections()
    try:
        return run_all(timezone.now())
    finally:
        connections.close_all()


class InProcessJobs:
    """An asyncio task running the background jobs every `interval_seconds` (float, > 0)."""

    def __init__(self, interval_seconds: float = DEFAULT_INTERVAL_SECONDS) -> None:
        if interval_seconds <= 0:
            raise ValueError("interval_seconds must be positive")
        self.interval_seconds = interval_seconds
        self.rounds = 0
        self._task: asyncio.Task | None = None
        self._stopping: asyncio.Event | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> InProcessJobs:
        """Start the loop on the running event loop; the first round runs at once.

        Raises:
            RuntimeError: when called outside a running event loop, or twice.
        """
        if self._task is not None:
            raise RuntimeError("the in-process jobs are already started")
        self._stopping = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="aigw-in-process-jobs")
        return self

    async def run_once(self) -> dict[str, int | None]:
        """Run one round of every job now, in a worker thread; returns each job's result."""
        results = await sync_to_async(_run_jobs_once, thread_sensitive=False)()
        self.rounds += 1
        return results

    async def _loop(self) -> None:
        assert self._stopping is not None
        while not self._stopping.is_set():
            try:
                await self.run_once()
            except Exception:
                log.exception("in-process background jobs failed; trying again in %ss", self.interval_seconds)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self.interval_seconds)

    async def stop(self, timeout_seconds: float = 30.0) -> None:
        """Stop the loop: a round under way may finish (up to `timeout_seconds`, then it is
        cancelled; the jobs are idempotent, the next start redoes what was left). Safe to call
        twice or on a runner that was never started."""
        if self._task is None or self._stopping is None or self._task.done():
            return
        self._stopping.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=timeout_seconds)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def start_in_process_jobs(*, interval_seconds: float | None = None, enabled: bool | None = None) -> InProcessJobs:
    """Start the background jobs in this process when `settings.AIGW_IN_PROCESS_JOBS` is true
    (or `enabled`), every `interval_seconds` (default: `settings.AIGW_IN_PROCESS_JOBS_INTERVAL_SECONDS`).
    Returns the runner; `await runner.stop()` on shutdown (a no-op when disabled).

    Raises:
        RuntimeError: when enabled and called outside a running event loop.
    """
    if enabled is None:
        enabled = settings.AIGW_IN_PROCESS_JOBS
    if interval_seconds is None:
        interval_seconds = settings.AIGW_IN_PROCESS_JOBS_INTERVAL_SECONDS
    runner = InProcessJobs(interval_seconds)
    if enabled:
        runner.start()
        log.info("background jobs run in this process every %ss", interval_seconds)
    return runner
