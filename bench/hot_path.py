#!/usr/bin/env python3
"""Quick measurement of the data plane's hot path on the mock provider (no upstream latency).

Starts aigw (uvicorn, one process) on a free port against DATABASE_URL / REDIS_URL (or the
embedded default in a temporary data dir), creates a gateway with a token quota, warms the key,
then measures:
- latency: N sequential non-streaming chat completions (p50 / p99, ms, client-side);
- throughput: requests per second with C concurrent connections, measured with `wrk` (Debian
  package `wrk`) for 10 s when it is installed (a Python client cannot load the server enough
  on two cores), else with M requests from httpx.
Every request is authenticated, checked against the token quota and metered.

    .venv/bin/python bench/hot_path.py [--requests 2000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.live_server import LiveServer  # noqa: E402

LIMITS_SCRIPT = """
from keys.models import ApiKey
from keys.tokens import hash_secret
from quotas.services import rate_limit_set, spend_budget_create, token_quota_set
key = ApiKey.objects.get(hashed_secret=hash_secret("{secret}"))
spend_budget_create(api_key=key, limit_usd=10**5, refresh_period="monthly", mode="hard")
token_quota_set(api_key=key, limit_tokens=10**12, refresh_period="daily", mode="hard")
rate_limit_set(api_key=key, tokens_per_minute=10**9, requests_per_minute=10**7)
"""
BODY = {"model": "mock/echo", "messages": [{"role": "user", "content": "Hello there, gateway!"}]}


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[int(q * 10) - 1] if len(values) > 1 else values[0]


async def sequential(url: str, headers: dict, n: int) -> list[float]:
    timings = []
    async with httpx.AsyncClient(timeout=10) as client:
        for _ in range(n):
            started = time.perf_counter()
            response = await client.post(url, json=BODY, headers=headers)
            timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text
    return timings


async def concurrent(url: str, headers: dict, n: int, concurrency: int) -> float:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        queue = list(range(n))

        async def worker() -> None:
            while queue:
                queue.pop()
                response = await client.post(url, json=BODY, headers=headers)
                assert response.status_code == 200, response.text

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return n / (time.perf_counter() - started)


def wrk_throughput(url: str, secret: str, concurrency: int, seconds: int = 10) -> float:
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = '{json.dumps(BODY)}'\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {secret}"\n'
    )
    out = subprocess.run(
        ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "-s", str(script), url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"wrk saw errors:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--limits",
        action="store_true",
        help="also give the key a hard spend budget, a hard token quota, TPM and RPM (none of them reached)",
    )
    args = parser.parse_args()

    data_dir = tempfile.mkdtemp(prefix="aigw-bench-")
    env = {"AIGW_DATA_DIR": data_dir, "LOG_LEVEL": "WARNING"}
    run_env = {**os.environ, **env}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=run_env, check=True)
    created = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "create_gateway",
            f"bench-{int(time.time())}",
            "--token-quota",
            str(10**12),
        ],
        cwd=ROOT,
        env=run_env,
        check=True,
        capture_output=True,
        text=True,
    )
    secret = created.stdout.strip().splitlines()[-1]
    if args.limits:
        subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", LIMITS_SCRIPT.format(secret=secret)],
            cwd=ROOT,
            env=run_env,
            check=True,
        )
    server = LiveServer(env)
    try:
        url = f"{server.v1}/chat/completions"
        headers = {"authorization": f"Bearer {secret}"}
        asyncio.run(sequential(url, headers, 200))  # warm the key, the model and the connections
        timings = asyncio.run(sequential(url, headers, args.requests))
        if shutil.which("wrk"):
            throughput = wrk_throughput(url, secret, args.concurrency)
        else:
            throughput = asyncio.run(concurrent(url, headers, args.requests, args.concurrency))
    finally:
        server.stop()
    backend = os.environ.get("DATABASE_URL", "sqlite").split("://")[0]
    counters = "redis" if os.environ.get("REDIS_URL") else "in-process"
    limits = "budget+quota+tpm+rpm (hard)" if args.limits else "gateway token quota only"
    print(f"database={backend} counters={counters} limits={limits} requests={args.requests}")
    print(
        f"sequential latency ms: p50={percentile(timings, 50):.2f} p99={percentile(timings, 99):.2f} "
        f"mean={statistics.mean(timings):.2f}"
    )
    print(f"throughput: {throughput:.0f} requests/s with {args.concurrency} concurrent connections")


if __name__ == "__main__":
    main()
