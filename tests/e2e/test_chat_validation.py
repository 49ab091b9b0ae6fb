"""SPEC §4: bad input to `POST /v1/chat/completions` is a 400 in OpenAI's error shape naming
its `param`, never a 5xx; a prompt of any size up to the body limit works on a limited key.
Over real HTTP against the gateway's own server process."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.setup import gateway_create
from tests.factories import ResourceGroupFactory

CHAT = {"model": "mock/echo", "messages": [{"role": "user", "content": "Hello there, gateway!"}]}


@pytest.fixture
def limited_secret(live):
    """A key under a TPM limit, so the request is estimated before it is forwarded."""
    _, _, secret = gateway_create(resource_group=ResourceGroupFactory(), name="validation", tokens_per_minute=10**9)
    return secret


def post(live, secret: str, body: dict) -> httpx.Response:
    return httpx.post(
        f"{live.v1}/chat/completions", json=body, headers={"authorization": f"Bearer {secret}"}, timeout=30
    )


def assert_bad_param(response: httpx.Response, param: str) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "invalid_request_error"
    assert error["param"] == param
    assert param in error["message"]


@pytest.mark.parametrize("options", ["include_usage", ["include_usage"], 1])
def test_stream_options_that_is_not_an_object_is_400_naming_it(live, limited_secret, options):
    response = post(live, limited_secret, {**CHAT, "stream": True, "stream_options": options})
    assert_bad_param(response, "stream_options")


def test_stream_options_include_usage_must_be_a_boolean(live, limited_secret):
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": "yes"}}
    assert_bad_param(post(live, limited_secret, body), "stream_options.include_usage")


@pytest.mark.parametrize("text", [42, None, ["a"]])
def test_a_text_part_whose_text_is_not_a_string_is_400_naming_the_part(live, limited_secret, text):
    body = {**CHAT, "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}]}
    assert_bad_param(post(live, limited_secret, body), "messages[0].content[0].text")


@pytest.mark.parametrize("stream", ["true", 1, 0])
def test_stream_that_is_not_a_boolean_is_400_not_502(live, limited_secret, stream):
    assert_bad_param(post(live, limited_secret, {**CHAT, "stream": stream}), "stream")


@pytest.mark.parametrize(
    ("field", "value"),
    [("temperature", 3), ("top_p", -0.1), ("n", 0), ("n", 1.5), ("max_tokens", 0), ("max_tokens", True)],
)
def test_numbers_out_of_their_type_or_range_are_400_naming_them(live, limited_secret, field, value):
    assert_bad_param(post(live, limited_secret, {**CHAT, field: value}), field)


def test_a_message_with_an_unknown_role_is_400_naming_it(live, limited_secret):
    body = {**CHAT, "messages": [{"role": "user", "content": "hi"}, {"role": "robot", "content": "x"}]}
    assert_bad_param(post(live, limited_secret, body), "messages[1].role")


def test_a_prompt_near_the_body_limit_works_on_a_key_with_tpm(live, limited_secret):
    # 3.9 MB with no split point: o200k's encoder refuses it ("Input too long to encode safely").
    prompt = "a" * 3_900_000
    response = post(live, limited_secret, {**CHAT, "messages": [{"role": "user", "content": prompt}]})
    assert response.status_code == 200, response.text[:300]
    assert response.json()["usage"]["prompt_tokens"] > 0


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
_PART = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "image_url", "refusal", "video"]) | _JSON},
    optional={"text": _JSON, "image_url": _JSON, "refusal": _JSON},
)
_MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant", "tool"]) | _JSON},
    optional={"content": st.text(max_size=40) | st.lists(_PART, max_size=3) | _JSON, "name": _JSON},
)
_FIELDS = [
    "stream",
    "stream_options",
    "n",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
    "tools",
    "tool_choice",
    "user",
    "seed",
    "logprobs",
    "top_logprobs",
    "response_format",
]
_BODY = st.fixed_dictionaries(
    {"model": st.just("mock/echo"), "messages": st.lists(_MESSAGE | _JSON, max_size=3) | _JSON},
    optional={field: _JSON | st.booleans() | st.integers(min_value=-3, max_value=5) for field in _FIELDS},
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_BODY)
def test_no_generated_body_gets_a_5xx(live, limited_secret, body):
    response = post(live, limited_secret, body)
    assert response.status_code < 500, (body, response.text)
    if response.status_code == 400:
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error" and error["message"]


def test_a_function_tool_without_a_name_is_400_and_a_well_formed_one_is_served(live, limited_secret):
    nameless = {**CHAT, "tools": [{"type": "function", "function": {"parameters": {}}}]}
    assert_bad_param(post(live, limited_secret, nameless), "tools[0].function")
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    assert post(live, limited_secret, {**CHAT, "tools": [tool]}).status_code == 200
