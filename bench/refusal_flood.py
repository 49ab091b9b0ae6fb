#!/usr/bin/env python3
"""What a flood of refusals costs the data plane and the database: N requests with an unknown
API key sent to one in-process data plane (ASGI, no network), once with the shipped flood
protection (AIGW_REFUSAL_EVENTS_PER_MINUTE=60) and once with every refusal written as its own row.
Prints refusals per second, microseconds per refusal, the rows stored and the requests they
count (which must equal N).

    .venv/bin/python bench/refusal_flood.py [--requests 20000]

Runs on a throwaway SQLite database in a temporary AIGW_DATA_DIR (DATABASE_URL and REDIS_URL
are ignored), so it needs no services.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
os.environ.pop("DATABASE_URL", None)
os.environ.pop("REDIS_URL", None)
os.environ["AIGW_DATA_DIR"] = tempfile.mkdtemp(prefix="aigw-refusal-bench-")
os.environ["AIGW_IN_PROCESS_JOBS"] = "false"

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db.models import Sum  # noqa: E402

from dataplane.app import ProxyApp  # noqa: E402
from usage.models import UsageEvent  # noqa: E402

BODY = b'{"model": "mock/echo", "messages": [{"role": "user", "content": "Hi"}]}'


async def _flood(app: ProxyApp, requests: int) -> float:
    """Send `requests` refused chat completions; returns the seconds they took (answers only)."""

    async def receive():
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message):
        return None

    started = time.perf_counter()
    for n in range(requests):
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/v1/chat/completions",
            "headers": [(b"authorization", f"Bearer aigw_unknown_{n % 97}".encode())],
            "client": (f"203.0.113.{n % 5}", 40000),
            "query_string": b"",
        }
        await app(scope, receive, send)
    return time.perf_counter() - started


async def run(requests: int, per_minute: int) -> dict:
    settings.AIGW_REFUSAL_EVENTS_PER_MINUTE = per_minute
    await asyncio.to_thread(UsageEvent.objects.all().delete)
    app = ProxyApp()
    seconds = await _flood(app, requests)
    await app.close()  # queues the minute's aggregates and writes everything
    rows = await asyncio.to_thread(UsageEvent.objects.count)
    counted = await asyncio.to_thread(lambda: UsageEvent.objects.aggregate(n=Sum("requests"))["n"])
    return {"seconds": seconds, "rows": rows, "counted": counted}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    print(f"{args.requests:,} refused requests (unknown keys from 5 addresses), one process, SQLite")
    print(f"{'events':<28} {'refusals/s':>11} {'µs/refusal':>11} {'rows':>8} {'requests counted':>17}")
    for label, per_minute in (("60 a minute, then aggregate", 60), ("one row per refusal", 10**9)):
        result = asyncio.run(run(args.requests, per_minute))
        rate = args.requests / result["seconds"]
        print(f"{label:<28} {rate:>11,.0f} {1e6 / rate:>11.1f} {result['rows']:>8,} {result['counted']:>17,}")
        assert result["counted"] == args.requests, "every refusal is counted"


if __name__ == "__main__":
    main()
