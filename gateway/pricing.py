"""Model prices (USD per million tokens by token type) and the cost of one request.

Defaults come from the genai-prices library (pydantic's maintained price table); an admin can
override them per model. Cost is computed here with `Decimal` from the prices stored on our
model row, so a usage event's cost is reproducible from the prices in force at that time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import genai_prices
from genai_prices import data_snapshot
from genai_prices.types import TieredPrices

ONE_MILLION = Decimal(1_000_000)
COST_PLACES = Decimal("0.0000000001")  # UsageEvent.cost_usd has 10 decimal places

# Our provider kinds, as genai-prices names its providers.
_GENAI_PROVIDER_IDS = {"openai": "openai", "anthropic": "anthropic"}


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Tokens of one request by type, OpenAI's convention, with nothing counted twice.

    `input_tokens` includes `cached_input_tokens` and `cache_write_tokens`; `output_tokens`
    includes `reasoning_tokens`; `total_tokens` = input + output.
    """

    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class Prices:
    """USD per million tokens; None for cached input or cache writes means the input price."""

    input: Decimal | None = None
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None
    output: Decimal | None = None

    def cost(self, usage: TokenUsage) -> Decimal:
        """Cost in USD of `usage`, quantized to 10 decimal places. Unpriced types cost 0."""
        input_price = self.input or Decimal(0)
        cached_price = self.cached_input if self.cached_input is not None else input_price
        write_price = self.cache_write if self.cache_write is not None else input_price
        uncached = usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens
        total = (
            max(uncached, 0) * input_price
            + usage.cached_input_tokens * cached_price
            + usage.cache_write_tokens * write_price
            + usage.output_tokens * (self.output or Decimal(0))
        )
        return (total / ONE_MILLION).quantize(COST_PLACES)


def _base(value: Decimal | TieredPrices | None) -> Decimal | None:
    if value is None:
        return None
    return value.base if isinstance(value, TieredPrices) else value


def default_prices(model_name: str, provider_kind: str) -> Prices | None:
    """Prices that genai-prices knows for `model_name` at this provider kind, or None.

    Tiered prices (e.g. above 200k input tokens) are reduced to their base tier.
    """
    provider_id = _GENAI_PROVIDER_IDS.get(provider_kind)
    if provider_id is None:
        return None
    try:
        _, model = data_snapshot.get_snapshot().find_provider_model(model_name, None, provider_id, None)
    except LookupError:
        return None
    price = model.get_prices(datetime.now(UTC))
    if not isinstance(price, genai_prices.types.ModelPrice):
        return None
    return Prices(
        input=_base(price.input_mtok),
        cached_input=_base(price.cache_read_mtok),
        cache_write=_base(price.cache_write_mtok),
        output=_base(price.output_mtok),
    )
