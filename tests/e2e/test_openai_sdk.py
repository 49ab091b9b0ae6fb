"""The official `openai` SDK against a live aigw server over real HTTP: answers, streaming, and
the usage event with exact tokens and cost, through the mock provider and the `openai` provider."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import httpx
import pytest
from openai import AsyncOpenAI, OpenAI

from gateway.pricing import Prices
from gateway.services import model_create, provider_create
from gateway.setup import gateway_create
from tests.conftest import wait_for_usage_event
from tests.factories import ResourceGroupFactory
from tests.support.fake_upstream import FAKE_ANSWER, FAKE_REQUEST_ID, FAKE_USAGE

PROMPT = [{"role": "user", "content": "Hello there, gateway!"}]


def new_key(**kwargs) -> tuple:
    gateway, api_key, secret = gateway_create(resource_group=ResourceGroupFactory(), name="sdk", **kwargs)
    return gateway, api_key, secret


def test_a_chat_completion_through_the_mock_provider_is_metered_exactly(live):
    gateway, api_key, secret = new_key()
    client = OpenAI(base_url=live.v1, api_key=secret)

    raw = client.chat.completions.with_raw_response.create(model="mock/echo", messages=PROMPT)
    completion = raw.parse()

    assert completion.choices[0].message.content == "Echo: Hello there, gateway!"
    # mock tokens: "Hello there , gateway !" = 5 + 4 per message + 3; answer adds "Echo :"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (12, 7)
    event = wait_for_usage_event(raw.headers["x-request-id"])
    assert (event.gateway_id, event.api_key_id, event.api_key_name) == (gateway.pk, api_key.pk, api_key.name)
    assert (event.model_requested, event.provider, event.stream, event.status_code) == (
        "mock/echo",
        "mock",
        False,
        200,
    )
    assert (event.input_tokens, event.cached_input_tokens, event.output_tokens, event.total_tokens) == (
        12,
        0,
        7,
        19,
    )
    # mock/echo: $1 per million input tokens, $2 per million output tokens
    assert event.cost_usd == Decimal("0.000026")
    deadline = time.monotonic() + 5  # last uses are written in batches, a second at the most after
    while api_key.last_used_at is None and time.monotonic() < deadline:
        time.sleep(0.05)
        api_key.refresh_from_db()
    assert api_key.last_used_at is not None and api_key.last_used_at >= event.created_at


def test_a_stream_passes_through_and_hides_the_usage_chunk_the_client_did_not_ask_for(live):
    _, _, secret = new_key()
    client = OpenAI(base_url=live.v1, api_key=secret)

    whole = client.chat.completions.create(model="mock/large", messages=PROMPT, max_tokens=40).choices[0]
    with client.chat.completions.with_streaming_response.create(
        model="mock/large", messages=PROMPT, max_tokens=40, stream=True
    ) as response:
        request_id = response.headers["x-request-id"]
        chunks = list(response.parse())

    assert all(chunk.choices for chunk in chunks), "the usage-only chunk was shown to a client that did not ask"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == whole.message.content
    event = wait_for_usage_event(request_id)
    # prompt 12 tokens, half cached (6); answer 24 visible + 16 reasoning tokens = max_tokens 40
    assert (event.stream, event.input_tokens, event.cached_input_tokens) == (True, 12, 6)
    assert (event.output_tokens, event.reasoning_tokens, event.total_tokens) == (40, 16, 52)
    # mock/large: $3 input, $0.30 cached input, $15 output per million tokens
    assert event.cost_usd == (6 * Decimal(3) + 6 * Decimal("0.3") + 40 * Decimal(15)) / 1_000_000
    assert event.time_to_first_token_ms is not None


def test_the_async_client_gets_the_usage_chunk_when_it_asks_for_it(live):
    _, _, secret = new_key()

    async def call():
        async with AsyncOpenAI(base_url=live.v1, api_key=secret) as client:
            stream = await client.chat.completions.create(
                model="mock/echo", messages=PROMPT, stream=True, stream_options={"include_usage": True}
            )
            return [chunk async for chunk in stream]

    chunks = asyncio.run(call())

    assert chunks[-1].choices == []
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (12, 7)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Echo: Hello there, gateway!"


@pytest.fixture
def fake_openai_model(live, fake_upstream):
    """A model `fake-model` on an `openai` provider pointed at the fake upstream, priced
    $2.50 input, $1.25 cached input, $10 output per million tokens."""
    provider = provider_create(
        name="fake-openai", kind="openai", base_url=fake_upstream.base_url, credential="sk-upstream-secret"
    )
    for name in ("fake-model", "fake-400", "fake-500", "fake-slow"):
        model_create(
            name=name,
            provider=provider,
            prices=Prices(input=Decimal("2.5"), cached_input=Decimal("1.25"), output=Decimal(10)),
        )
    fake_upstream.requests.clear()
    return provider


# (1200 - 1000) uncached x $2.50 + 1000 cached x $1.25 + 350 output x $10, per million tokens
FAKE_COST = Decimal("0.00525")


def test_the_openai_provider_forwards_with_its_credential_and_meters_cached_tokens(
    live, fake_upstream, fake_openai_model
):
    _, _, secret = new_key()
    client = OpenAI(base_url=live.v1, api_key=secret)

    raw = client.chat.completions.with_raw_response.create(model="fake-model", messages=PROMPT)

    assert raw.parse().choices[0].message.content == FAKE_ANSWER
    assert raw.parse().usage.prompt_tokens_details.cached_tokens == 1000
    upstream = fake_upstream.requests[-1]
    assert upstream["path"] == "/v1/chat/completions"
    assert upstream["headers"]["authorization"] == "Bearer sk-upstream-secret"
    assert secret not in str(upstream["headers"])
    event = wait_for_usage_event(raw.headers["x-request-id"])
    assert (event.provider, event.upstream_request_id) == ("fake-openai", FAKE_REQUEST_ID)
    assert (event.input_tokens, event.cached_input_tokens, event.output_tokens) == (1200, 1000, 350)
    assert (event.reasoning_tokens, event.total_tokens) == (100, FAKE_USAGE["total_tokens"])
    assert event.cost_usd == FAKE_COST


def test_a_stream_through_the_openai_provider_asks_upstream_for_usage_and_meters_it(
    live, fake_upstream, fake_openai_model
):
    _, _, secret = new_key()

    async def call():
        async with AsyncOpenAI(base_url=live.v1, api_key=secret) as client:
            response = await client.chat.completions.with_raw_response.create(
                model="fake-model", messages=PROMPT, stream=True
            )
            return response.headers["x-request-id"], [chunk async for chunk in response.parse()]

    request_id, chunks = asyncio.run(call())

    assert fake_upstream.requests[-1]["json"]["stream_options"] == {"include_usage": True}
    assert all(chunk.choices for chunk in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks).strip() == FAKE_ANSWER
    event = wait_for_usage_event(request_id)
    assert (event.stream, event.input_tokens, event.cached_input_tokens, event.output_tokens) == (
        True,
        1200,
        1000,
        350,
    )
    assert event.cost_usd == FAKE_COST


def test_the_models_list_shows_only_the_models_the_gateway_allows(live):
    from gateway.models import Model

    _, _, secret = new_key(allowed_models=[Model.objects.get(name="mock/echo")])
    client = OpenAI(base_url=live.v1, api_key=secret)

    assert [model.id for model in client.models.list()] == ["mock/echo"]


def test_a_client_that_drops_a_stream_halfway_is_charged_for_every_token_produced(live):
    slow = provider_create(name="slow-mock", kind="mock", settings={"latency_ms": 1000})
    model_create(
        name="slow-large",
        provider=slow,
        upstream_model="mock/large",
        prices=Prices(input=Decimal(3), cached_input=Decimal("0.3"), output=Decimal(15)),
    )
    _, _, secret = new_key()

    with httpx.stream(
        "POST",
        f"{live.v1}/chat/completions",
        timeout=10,
        headers={"authorization": f"Bearer {secret}"},
        json={"model": "slow-large", "messages": PROMPT, "stream": True, "max_tokens": 40},
    ) as response:
        request_id = response.headers["x-request-id"]
        lines = response.iter_lines()
        first = next(line for line in lines if line.startswith("data:"))
    assert '"role":"assistant"' in first  # the client read one chunk, then hung up

    event = wait_for_usage_event(request_id)
    assert event.client_disconnected is True
    assert (event.input_tokens, event.cached_input_tokens, event.output_tokens) == (12, 6, 40)
    assert event.cost_usd == (6 * Decimal(3) + 6 * Decimal("0.3") + 40 * Decimal(15)) / 1_000_000
