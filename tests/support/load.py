"""A burst of simultaneous requests from several client processes, for the concurrency tests."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor

import httpx


def _one_process(url: str, secret: str, body: dict, count: int, start_at: float) -> list[tuple[int, str, str]]:
    async def burst() -> list[tuple[int, str, str]]:
        limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            await asyncio.sleep(max(0.0, start_at - time.time()))  # every process starts together

            async def one() -> tuple[int, str, str]:
                response = await client.post(url, json=body, headers={"authorization": f"Bearer {secret}"})
                code = response.json()["error"]["code"] if response.status_code != 200 else ""
                return response.status_code, code, response.headers.get("retry-after", "")

            return await asyncio.gather(*(one() for _ in range(count)))

    return asyncio.run(burst())


def burst(url: str, secret: str, body: dict, processes: int = 4, per_process: int = 16) -> list[tuple[int, str, str]]:
    """`processes` x `per_process` simultaneous POSTs; returns (status, error code, retry-after) each."""
    start_at = time.time() + 1.5
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
        futures = [pool.submit(_one_process, url, secret, body, per_process, start_at) for _ in range(processes)]
        return [result for future in futures for result in future.result()]


def _sustain_one(url: str, secret: str, body: dict, concurrency: int, seconds: float) -> list[tuple[int, str, str]]:
    async def run() -> list[tuple[int, str, str]]:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        results: list[tuple[int, str, str]] = []
        until = time.monotonic() + seconds
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:

            async def loop() -> None:
                while time.monotonic() < until:
                    response = await client.post(url, json=body, headers={"authorization": f"Bearer {secret}"})
                    code = response.json()["error"]["code"] if response.status_code != 200 else ""
                    results.append((response.status_code, code, response.headers.get("retry-after", "")))

            await asyncio.gather(*(loop() for _ in range(concurrency)))
        return results

    return asyncio.run(run())


def sustain(
    url: str, secret: str, body: dict, processes: int = 3, concurrency: int = 8, seconds: float = 4.0
) -> list[tuple[int, str, str]]:
    """Keep `processes` x `concurrency` requests in flight for `seconds` (each client sends its
    next POST when the last one is answered); returns (status, error code, retry-after) each."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
        futures = [pool.submit(_sustain_one, url, secret, body, concurrency, seconds) for _ in range(processes)]
        return [result for future in futures for result in future.result()]
