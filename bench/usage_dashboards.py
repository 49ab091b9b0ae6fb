#!/usr/bin/env python3
"""Usage dashboards at scale (issue 6): seed N usage events (default 5 million) over 90 days into
PostgreSQL, roll them up, then measure the server time of the gateway dashboard for 30 days and
of the logs' first page, and the peak memory of a CSV export of 1 million events.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/aigw_bench \\
      .venv/bin/python bench/usage_dashboards.py [--events 5000000] [--reuse]

The database is migrated and, unless `--reuse` finds it already seeded, emptied and seeded with
PostgreSQL's COPY. Server time is measured around Django's test client (the whole view:
middleware, queries, template), several rounds after a warm-up, as p50 / p95 / max.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import sys
import time
import tracemalloc
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

from gateway.models import Gateway, Membership, ResourceGroup, Role  # noqa: E402
from gateway.setup import gateway_create  # noqa: E402
from keys.services import api_key_create  # noqa: E402
from usage.jobs import rollup_usage  # noqa: E402
from usage.models import UsageEvent, UsageRollup, UsageRollupDirtyHour  # noqa: E402

DAYS = 90
GATEWAYS = 10
KEYS_PER_GATEWAY = 5
MODELS = ("gpt-4o-mini", "gpt-4o", "claude-sonnet", "claude-haiku", "mock/echo", "mock/large")
COLUMNS = (
    "request_id",
    "created_at",
    "resource_group_id",
    "gateway_id",
    "api_key_id",
    "api_key_name",
    "endpoint",
    "model_requested",
    "provider",
    "model_served",
    "stream",
    "status_code",
    "error_code",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "total_tokens",
    "cost_usd",
    "latency_ms",
    "upstream_request_id",
    "client_disconnected",
)


def _objects():
    """Two resource groups, GATEWAYS gateways, KEYS_PER_GATEWAY keys each, and an auditor."""
    from django.contrib.auth import get_user_model

    user, _ = get_user_model().objects.get_or_create(username="bench-auditor")
    keys = []
    for g in range(GATEWAYS):
        group, _ = ResourceGroup.objects.get_or_create(name=f"bench-group-{g % 2}")
        Membership.objects.get_or_create(user=user, resource_group=group, defaults={"role": Role.AUDITOR})
        gateway = Gateway.objects.filter(name=f"bench-gw-{g}", deleted_at__isnull=True).first()
        if gateway is None:
            gateway, _, _ = gateway_create(resource_group=group, name=f"bench-gw-{g}", key_name="key-0")
        existing = list(gateway.api_keys.order_by("pk"))
        for k in range(len(existing), KEYS_PER_GATEWAY):
            existing.append(api_key_create(gateway=gateway, name=f"key-{k}")[0])
        keys.extend(existing[:KEYS_PER_GATEWAY])
    return user, keys


def _seed(keys, total: int, now: datetime) -> None:
    rng = random.Random(42)
    start = now - timedelta(days=DAYS)
    span = DAYS * 86400
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE usage_usageevent, usage_usagerollup, usage_usagerollupdirtyhour")
    written, chunk = 0, 200_000
    began = time.perf_counter()
    while written < total:
        buffer = io.StringIO()
        size = min(chunk, total - written)
        # Events arrive in time order in production, so the table is seeded in time order too:
        # each chunk covers its own slice of the 90 days, sorted (random order would make every
        # time-ordered read a random heap access, which no real gateway's table looks like).
        slice_start, slice_span = written / total * span, size / total * span
        offsets = sorted(slice_start + rng.random() * slice_span for _ in range(size))
        for offset in offsets:
            key = keys[int(rng.random() ** 1.6 * len(keys))]  # some keys much busier than others
            at = start + timedelta(seconds=offset)
            input_tokens = rng.randrange(50, 8000)
            cached = input_tokens // 2 if rng.random() < 0.3 else 0
            output = rng.randrange(10, 2000)
            status = 200 if rng.random() > 0.03 else rng.choice((429, 500, 502))
            cost = Decimal(input_tokens * 150 + output * 600) / Decimal(10**9)
            row = (
                f"req_{uuid.UUID(int=rng.getrandbits(128)).hex}",
                at.isoformat(),
                key.gateway.resource_group_id,
                key.gateway_id,
                key.pk,
                key.name,
                "chat.completions",
                rng.choice(MODELS),
                "openai",
                "",
                "f",
                status,
                "" if status == 200 else "upstream_error",
                input_tokens,
                cached,
                0,
                output,
                0,
                input_tokens + output,
                f"{cost:.10f}",
                rng.randrange(80, 4000),
                "",
                "f",
            )
            buffer.write("\t".join(str(v) for v in row) + "\n")
        buffer.seek(0)
        with (
            connection.cursor() as cursor,
            cursor.copy(f"COPY usage_usageevent ({', '.join(COLUMNS)}) FROM STDIN") as copy,
        ):
            copy.write(buffer.read())
        written += min(chunk, total - written)
        print(f"  seeded {written:,} events ({time.perf_counter() - began:.0f} s)", flush=True)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO usage_usagerollupdirtyhour (hour, token) "
            "SELECT DISTINCT date_trunc('hour', created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', 'seed' "
            "FROM usage_usageevent"
        )
        cursor.execute("ANALYZE usage_usageevent")
    began = time.perf_counter()
    hours = UsageRollupDirtyHour.objects.count()
    rollup_usage(now)
    rows = UsageRollup.objects.count()
    print(f"  rolled up {hours:,} hours into {rows:,} rows in {time.perf_counter() - began:.0f} s")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE usage_usagerollup")


def _time(client: Client, url: str, rounds: int) -> tuple[float, float, float]:
    client.get(url)  # warm-up
    timings = []
    for _ in range(rounds):
        began = time.perf_counter()
        response = client.get(url)
        timings.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    timings.sort()
    return statistics.median(timings), timings[int(len(timings) * 0.95) - 1], timings[-1]


def _stream(client: Client, url: str) -> int:
    response = client.get(url)
    lines = 0
    for chunk in response.streaming_content:
        lines += chunk.count(b"\n") if isinstance(chunk, bytes) else chunk.count("\n")
    return lines - 1


def _csv_peak(client: Client, url: str) -> tuple[int, float, float]:
    """(rows, seconds, peak traced MiB) of streaming the CSV at `url` to nowhere: timed on one
    pass, memory traced on a second (tracemalloc slows Python down several times)."""
    began = time.perf_counter()
    rows = _stream(client, url)
    elapsed = time.perf_counter() - began
    tracemalloc.start()
    _stream(client, url)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return rows, elapsed, peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--reuse", action="store_true", help="keep the events already seeded")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("set DATABASE_URL to a PostgreSQL database (it is emptied)")
    call_command("migrate", verbosity=0)
    now = timezone.now()
    user, keys = _objects()
    if not (args.reuse and UsageEvent.objects.count() >= args.events):
        print(f"seeding {args.events:,} usage events over {DAYS} days")
        _seed(keys, args.events, now)
    events = UsageEvent.objects.count()
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    busiest = keys[0].gateway
    gateway_events = UsageEvent.objects.filter(gateway=busiest).count()
    print(f"\n{events:,} events; gateway {busiest.name} has {gateway_events:,} of them\n")
    pages = {
        "gateway dashboard, 30 days": f"/usage/?gateway={busiest.pk}&range=30d",
        "gateway dashboard, 90 days": f"/usage/?gateway={busiest.pk}&range=90d",
        "all-groups dashboard, 30 days": "/usage/?range=30d",
        "logs, first page (all)": "/usage/logs/",
        "logs, first page (gateway)": f"/usage/logs/?gateway={busiest.pk}",
        "logs, first page (errors of a key)": f"/usage/logs/?api_key={keys[3].pk}&status=error",
    }
    print("| page | server time p50 | p95 | max |\n| --- | --- | --- | --- |")
    for name, url in pages.items():
        p50, p95, worst = _time(client, url, args.rounds)
        print(f"| {name} | {p50:.0f} ms | {p95:.0f} ms | {worst:.0f} ms |", flush=True)
    print("\n| CSV export | rows | time | peak Python memory |\n| --- | --- | --- | --- |")
    ordered = UsageEvent.objects.order_by("-created_at", "-id").values_list("created_at", flat=True)
    for size in (100_000, 1_000_000):
        since = ordered[size - 1] if events >= size else ordered.last()
        url = f"/api/v1/usage-events?format=csv&since={since.isoformat().replace('+00:00', 'Z')}"
        rows, seconds, peak = _csv_peak(client, url)
        print(f"| last {size:,} events | {rows:,} | {seconds:.1f} s | {peak:.1f} MiB |", flush=True)


if __name__ == "__main__":
    main()
