"""Hard mode's bound (SPEC §3: a hard limit reserves what the provider's count cannot pass),
proved over random chat bodies against `fake-bytes`, a provider that counts one token per UTF-8
byte of everything it tokenizes plus the largest overheads any provider adds; and the edges of
the bound: a quota of exactly the bound admits, one token less refuses, a file part is refused
with its `param`, and the output limit the bound assumed is the one sent upstream."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.pricing import Prices
from gateway.services import model_create, provider_create
from gateway.setup import gateway_create
from quotas.estimate import output_bound, prompt_bound
from quotas.models import LimitMode
from quotas.services import MAXIMUM_BUDGET_USD, spend_budget_create, token_quota_set
from tests.factories import ResourceGroupFactory
from tests.support.fake_upstream import bytes_usage
from tests.support.inprocess import InProcessGateway
from usage.models import UsageEvent

pytestmark = pytest.mark.django_db(transaction=True)

OUTPUT_LIMIT = 64  # the model's max_output_tokens
# USD per million tokens: $1 per prompt token, $4 per output token, so that a budget of a few
# dollars is a few random requests' worth
PRICES = Prices(input=Decimal(1_000_000), output=Decimal(4_000_000))
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))

# Text that a byte-counting provider finds dear: ASCII, accents, CJK, emoji, escapes.
_TEXT = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8", exclude_categories=("Cs",)),
        st.sampled_from(list('aé日🌍"\\\n\t<>|')),
    ),
    max_size=120,
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**9), 10**9) | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=8,
)
_IMAGE = st.builds(
    lambda detail, url: {"type": "image_url", "image_url": {"url": url, **({"detail": detail} if detail else {})}},
    st.sampled_from([None, "low", "high", "auto"]),
    st.sampled_from(["https://example.test/cat.png", "data:image/png;base64,iVBORw0KGgo="]),
)
_PARTS = st.lists(st.builds(lambda text: {"type": "text", "text": text}, _TEXT) | _IMAGE, min_size=1, max_size=3)
_CALL = st.builds(
    lambda i, name, args: {"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": args}},
    st.integers(0, 99),
    _TEXT,
    _TEXT,
)


@st.composite
def _message(draw) -> dict:
    role = draw(st.sampled_from(["system", "developer", "user", "assistant", "tool"]))
    message: dict = {"role": role, "content": draw(_TEXT | _PARTS)}
    if role == "assistant" and draw(st.booleans()):
        message["content"] = None
        message["tool_calls"] = draw(st.lists(_CALL, min_size=1, max_size=2))
    if role == "tool":
        message["tool_call_id"] = draw(st.sampled_from(["call_1", "call_2"]))
    if draw(st.booleans()):
        message["name"] = draw(_TEXT)
    return message


_TOOL = st.builds(
    lambda name, description, parameters: {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": {"type": "object", **parameters}},
    },
    _TEXT,
    _TEXT,
    st.dictionaries(st.sampled_from(["properties", "required", "$defs"]), _JSON, max_size=2),
)


@st.composite
def chat_bodies(draw) -> dict:
    """Valid chat completions bodies for model `bytes` with every field a provider tokenizes."""
    body: dict = {"model": "bytes", "messages": draw(st.lists(_message(), min_size=1, max_size=5))}
    if draw(st.booleans()):
        body["tools"] = draw(st.lists(_TOOL, min_size=1, max_size=3))
    if draw(st.booleans()):
        body["response_format"] = {"type": "json_schema", "json_schema": {"name": "answer", "schema": draw(_JSON)}}
    if draw(st.booleans()):
        body["n"] = draw(st.integers(1, 3))
    limit = draw(st.sampled_from([None, "max_tokens", "max_completion_tokens"]))
    if limit:
        body[limit] = draw(st.integers(1, 500))
    if draw(st.booleans()):
        body["stream"] = True
    return body


def _bound(body: dict) -> int:
    return prompt_bound(body) + output_bound(body, OUTPUT_LIMIT)


@pytest.fixture
def bytes_model(fake_upstream):
    provider = provider_create(name="counts-bytes", kind="openai", base_url=fake_upstream.base_url)
    model_create(
        name="bytes", provider=provider, upstream_model="fake-bytes", prices=PRICES, max_output_tokens=OUTPUT_LIMIT
    )
    proxy = InProcessGateway()
    yield proxy
    proxy.close()


def _hard_key(limit_tokens: int):
    _, api_key, secret = gateway_create(resource_group=ResourceGroupFactory(), name="hard")
    token_quota_set(api_key=api_key, limit_tokens=limit_tokens, mode=LimitMode.HARD)
    return api_key, secret


def _send(proxy: InProcessGateway, secret: str, body: dict):
    return proxy.chat(secret, **{**body, "messages": body["messages"]})


def test_the_bound_is_never_below_what_a_byte_counting_provider_charges(bytes_model, fake_upstream):
    api_key, secret = _hard_key(10**12)

    @PROPERTY
    @given(chat_bodies())
    def check(body):
        sent_before = len(fake_upstream.requests)
        response = _send(bytes_model, secret, body)
        assert response.status_code == 200, response.text
        upstream_body = fake_upstream.requests[sent_before]["json"]
        counted = bytes_usage(upstream_body)
        assert counted["prompt_tokens"] <= prompt_bound(body)
        assert counted["completion_tokens"] <= output_bound(body, OUTPUT_LIMIT)
        event = UsageEvent.objects.filter(api_key=api_key).order_by("-id").first()
        assert event is not None and event.total_tokens == counted["total_tokens"] <= _bound(body)

    check()


def test_random_traffic_never_passes_a_hard_token_quota_or_spend_budget(bytes_model):
    # The limits are drawn as a share of what the traffic could use at most, so that they bite
    # anywhere from the first request to never.
    @PROPERTY
    @given(st.lists(chat_bodies(), min_size=1, max_size=8), st.integers(1, 120), st.integers(1, 120))
    def check(bodies, quota_percent, budget_percent):
        bounds = [_bound(body) for body in bodies]
        limit_tokens = max(1, sum(bounds) * quota_percent // 100)
        worst_usd = sum(prompt_bound(b) * 1 + output_bound(b, OUTPUT_LIMIT) * 4 for b in bodies)
        # Image allowances at $4 a token can draw a worst case above the largest budget there is.
        budget = min(max(Decimal(1), Decimal(worst_usd * budget_percent) / 100), MAXIMUM_BUDGET_USD)
        api_key, secret = _hard_key(limit_tokens)
        spend_budget_create(api_key=api_key, limit_usd=budget, mode=LimitMode.HARD)
        statuses = [_send(bytes_model, secret, body).status_code for body in bodies]
        assert set(statuses) <= {200, 429}
        served = UsageEvent.objects.filter(api_key=api_key, status_code=200)
        assert sum(e.total_tokens for e in served) <= limit_tokens
        assert sum((e.cost_usd for e in served), Decimal(0)) <= budget

    check()


def test_a_hard_quota_of_exactly_the_bound_admits_and_one_token_less_refuses(bytes_model, fake_upstream):
    body = {"model": "bytes", "messages": [{"role": "user", "content": "Grüß Gott, 世界!"}], "max_tokens": 10}
    bound = _bound(body)

    _, exact = _hard_key(bound)
    assert _send(bytes_model, exact, body).status_code == 200

    sent_before = len(fake_upstream.requests)
    _, short = _hard_key(bound - 1)
    refused = _send(bytes_model, short, body)
    assert refused.status_code == 429
    assert f"could use up to {bound:,}" in refused.json()["error"]["message"]
    assert len(fake_upstream.requests) == sent_before  # nothing reached the provider


def test_a_file_part_under_a_hard_limit_is_a_400_naming_it_and_passes_without_one(bytes_model, fake_upstream):
    content = [
        {"type": "text", "text": "Summarise this."},
        {"type": "file", "file": {"file_id": "file-abc123"}},
    ]
    body = {"model": "bytes", "messages": [{"role": "user", "content": content}]}
    _, hard = _hard_key(10**9)
    refused = _send(bytes_model, hard, body)
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "unsupported_for_hard_limits"
    assert refused.json()["error"]["param"] == "messages[0].content[1]"

    _, _, soft = gateway_create(resource_group=ResourceGroupFactory(), name="soft")
    assert _send(bytes_model, soft, body).status_code == 200


@pytest.mark.parametrize(
    ("asked", "sent"),
    [
        ({}, {"max_completion_tokens": OUTPUT_LIMIT}),  # no limit: the model's is sent
        ({"max_tokens": 10_000}, {"max_tokens": OUTPUT_LIMIT}),  # above the model's: lowered
        ({"max_completion_tokens": 20}, {"max_completion_tokens": 20}),  # within: unchanged
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_under_a_hard_limit_the_provider_is_sent_the_output_limit_the_bound_assumed(
    bytes_model, fake_upstream, asked, sent, stream
):
    body = {"model": "bytes", "messages": [{"role": "user", "content": "Hi"}], **asked}
    if stream:
        body["stream"] = True
    api_key, secret = _hard_key(10**9)
    sent_before = len(fake_upstream.requests)
    assert _send(bytes_model, secret, body).status_code == 200
    upstream_body = fake_upstream.requests[sent_before]["json"]
    assert {k: upstream_body[k] for k in sent} == sent
    event = UsageEvent.objects.get(api_key=api_key)
    assert event.output_tokens == min(sent.values()) <= output_bound(body, OUTPUT_LIMIT)
