"""A realistic usage history for `manage.py demo`: weeks of traffic on several API keys and
models, with a daily rhythm (busy in the UTC afternoon, quiet at night and at weekends), some
errors and slow requests, and one key that runs into its monthly spend budget. Events are priced
with the models' own prices and written like the recorder writes them, then rolled up."""

from __future__ import annotations

import math
import random
import uuid
from datetime import datetime, timedelta
from decimal import Decimal

from gateway.models import Gateway, Model
from gateway.pricing import Prices, TokenUsage
from keys.models import ApiKey
from usage.jobs import rollup_usage
from usage.models import UsageEvent
from usage.rollups import hour_floor, insert_events

# (API key name, requests per busy hour, models it calls, input tokens, output tokens)
PROFILES = {
    "support-bot": (14, ("mock/echo",), 900, 250),
    "nightly-batch": (5, ("mock/large",), 6000, 1500),
    "eval-harness": (3, ("mock/echo", "mock/large"), 2500, 600),
}
ERROR_CODES = ((429, "rate_limit_exceeded"), (502, "upstream_error"), (400, "invalid_request_error"))


def _rhythm(at: datetime) -> float:
    """0–1: a daily wave peaking at 14:00 UTC, a third of it at weekends."""
    wave = 0.15 + 0.85 * max(0.0, math.cos((at.hour - 14) / 24 * 2 * math.pi)) ** 2
    return wave * (0.35 if at.weekday() >= 5 else 1.0)


def _prices(model_name: str) -> Prices:
    model = Model.objects.filter(name=model_name).first()
    if model is None:
        return Prices()
    return Prices(
        model.input_price_per_mtok,
        model.cached_input_price_per_mtok,
        model.cache_write_price_per_mtok,
        model.output_price_per_mtok,
    )


def seed_history(*, keys: dict[str, ApiKey], now: datetime, days: int = 28, seed: int = 7) -> int:
    """Write `days` days of usage events up to `now` for `keys` (named as in PROFILES) and roll
    them up; returns the number of events. Deterministic for a given `seed`."""
    rng = random.Random(seed)
    prices = {name: _prices(name) for profile in PROFILES.values() for name in profile[1]}
    start = hour_floor(now) - timedelta(days=days)
    batch: list[UsageEvent] = []
    written = 0
    hour = start
    while hour < now:
        for key_name, (per_hour, models, input_mean, output_mean) in PROFILES.items():
            api_key = keys.get(key_name)
            if api_key is None:
                continue
            gateway: Gateway = api_key.gateway
            for _ in range(int(rng.gauss(per_hour * _rhythm(hour), 1.5)) if per_hour else 0):
                at = hour + timedelta(seconds=rng.randrange(3600))
                if at >= now:
                    continue
                model = rng.choice(models)
                status, error_code = (200, "")
                if rng.random() < 0.03:
                    status, error_code = rng.choice(ERROR_CODES)
                input_tokens = max(1, int(rng.lognormvariate(math.log(input_mean), 0.5)))
                cached = int(input_tokens * rng.choice((0, 0, 0.5, 0.8)))
                output = 0 if status != 200 else max(1, int(rng.lognormvariate(math.log(output_mean), 0.6)))
                usage = TokenUsage(input_tokens if status == 200 else 0, cached if status == 200 else 0, 0, output, 0)
                latency = int(rng.lognormvariate(math.log(350 + output * 1.2), 0.35))
                batch.append(
                    UsageEvent(
                        request_id=f"req_demo_{uuid.UUID(int=rng.getrandbits(128)).hex}",
                        created_at=at,
                        resource_group_id=gateway.resource_group_id,
                        gateway=gateway,
                        api_key=api_key,
                        api_key_name=api_key.name,
                        model_requested=model,
                        provider="mock",
                        model_served=model if status == 200 else "",
                        stream=rng.random() < 0.4,
                        status_code=status,
                        error_code=error_code,
                        input_tokens=usage.input_tokens,
                        cached_input_tokens=usage.cached_input_tokens,
                        output_tokens=usage.output_tokens,
                        total_tokens=usage.total_tokens,
                        cost_usd=prices[model].cost(usage) if status == 200 else Decimal(0),
                        latency_ms=latency,
                        time_to_first_token_ms=min(latency, int(latency * 0.2) + 40),
                    )
                )
        if len(batch) >= 2000:
            insert_events(batch)
            written += len(batch)
            batch = []
        hour += timedelta(hours=1)
    if batch:
        insert_events(batch)
        written += len(batch)
    rollup_usage(now)
    return written
