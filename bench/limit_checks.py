#!/usr/bin/env python3
"""The per-request cost of the limit checks on Redis: one check-and-reserve (Lua) plus one
settle for a key with a hard spend budget, a hard token quota, TPM and RPM (4 counters),
measured sequentially from one asyncio client (the way one gateway process calls it).

    REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python bench/limit_checks.py [--rounds 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("AIGW_REDIS_PREFIX", f"aigwbench{os.getpid()}")

import django  # noqa: E402

django.setup()

from gateway.pricing import Prices, TokenUsage  # noqa: E402
from quotas.counters import make_counters  # noqa: E402
from quotas.engine import MINUTE, Estimate, LimitEngine, LimitRule  # noqa: E402


class _Key:
    key_id = 1
    status = "active"
    suspended_reason = ""


async def main(rounds: int) -> None:
    counters = make_counters()
    engine = LimitEngine(counters)
    rules = (
        LimitRule("rpm", "api_key", 1, 10**9, MINUTE, group_id=1),
        LimitRule("tpm", "api_key", 1, 10**12, MINUTE, group_id=1),
        LimitRule("tokens", "api_key", 1, 10**15, "daily", hard=True, group_id=1),
        LimitRule("spend", "api_key", 1, 10**15, "monthly", hard=True, group_id=1),
    )
    estimate = Estimate.of(12, 120, 7, Prices(input=Decimal(1), output=Decimal(2)))
    usage = TokenUsage(input_tokens=12, output_tokens=7)
    for name in [engine._check(r, datetime.now(UTC), estimate).name for r in rules[2:]]:
        await counters.seed_counter(name, 0, 3600, 0)
    timings, admit_timings = [], []
    for _ in range(rounds):
        now = datetime.now(UTC)
        started = time.perf_counter()
        admission = await engine.admit(_Key(), rules, now, estimate)
        admitted = time.perf_counter()
        await engine.settle(admission, usage, Decimal("0.000026"))
        timings.append((time.perf_counter() - started) * 1e6)
        admit_timings.append((admitted - started) * 1e6)
    kind = "redis" if os.environ.get("REDIS_URL") else "in-process"
    quantiles = statistics.quantiles(timings, n=100)
    print(
        f"counters={kind} rounds={rounds} admit+settle of 4 limits: p50={quantiles[49]:.0f} us "
        f"p99={quantiles[98]:.0f} us mean={statistics.mean(timings):.0f} us; admit alone (on the request's path; "
        f"settle runs after the answer): p50={statistics.median(admit_timings):.0f} us"
    )
    close = getattr(counters, "close", None)
    if close:
        await close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5000)
    asyncio.run(main(parser.parse_args().rounds))
