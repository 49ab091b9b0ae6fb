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
