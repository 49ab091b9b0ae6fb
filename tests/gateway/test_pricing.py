"""Prices per token type and the cost of a request, exactly, in Decimal."""

from decimal import Decimal

import pytest

from dataplane.usage import usage_from_openai
from gateway.models import Model
from gateway.pricing import Prices, TokenUsage
from gateway.services import model_create, provider_create


def test_openai_cached_and_reasoning_tokens_are_not_counted_twice():
    usage = usage_from_openai(
        {
            "prompt_tokens": 1200,
            "completion_tokens": 350,
            "total_tokens": 1550,
            "prompt_tokens_details": {"cached_tokens": 1000},
            "completion_tokens_details": {"reasoning_tokens": 100},
        }
    )
    assert usage == TokenUsage(input_tokens=1200, cached_input_tokens=1000, output_tokens=350, reasoning_tokens=100)
    assert usage.total_tokens == 1550


def test_missing_or_malformed_usage_counts_as_zero_tokens():
    assert usage_from_openai(None).total_tokens == 0
    assert usage_from_openai({"prompt_tokens": "12", "completion_tokens": -3}).total_tokens == 0


def test_the_cost_prices_each_token_type_once():
    prices = Prices(input=Decimal(3), cached_input=Decimal("0.3"), cache_write=Decimal("3.75"), output=Decimal(15))
    usage = TokenUsage(input_tokens=10_000, cached_input_tokens=6_000, cache_write_tokens=2_000, output_tokens=500)
    # 2,000 uncached x $3 + 6,000 cached x $0.30 + 2,000 written x $3.75 + 500 output x $15, per million
    assert prices.cost(usage) == Decimal("0.0228")


def test_cached_tokens_without_their_own_price_cost_the_input_price():
    prices = Prices(input=Decimal(2), output=Decimal(4))
    assert prices.cost(TokenUsage(input_tokens=100, cached_input_tokens=60, output_tokens=10)) == Decimal("0.00024")


@pytest.mark.django_db
def test_a_known_model_gets_its_prices_from_genai_prices_and_an_admin_can_override_them():
    provider = provider_create(name="openai", kind="openai", base_url="https://api.openai.com/v1", credential="sk")

    known = model_create(name="gpt-4o-mini", provider=provider)
    custom = model_create(
        name="my-mini",
        provider=provider,
        upstream_model="gpt-4o-mini",
        prices=Prices(input=Decimal("0.1"), output=Decimal("0.2")),
    )
    unknown = model_create(name="house-model", provider=provider)

    assert known.price_source == Model.PriceSource.GENAI_PRICES
    assert (known.input_price_per_mtok, known.cached_input_price_per_mtok, known.output_price_per_mtok) == (
        Decimal("0.15"),
        Decimal("0.075"),
        Decimal("0.6"),
    )
    assert (custom.price_source, custom.input_price_per_mtok) == (Model.PriceSource.CUSTOM, Decimal("0.1"))
    assert (unknown.price_source, unknown.input_price_per_mtok) == (Model.PriceSource.NONE, None)
