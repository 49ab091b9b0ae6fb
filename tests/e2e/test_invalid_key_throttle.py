"""Invalid API keys on /v1/ are throttled per client address, over real HTTP: after
AIGW_INVALID_KEY_LIMIT unknown or missing keys from one address, that address gets 429 with
Retry-After for the rest of the window, while valid keys and other addresses are served.

The server here trusts X-Forwarded-For from 127.0.0.1 (AIGW_TRUSTED_PROXIES), so each test plays
clients at addresses of its own; uvicorn's own proxy-header handling is pointed elsewhere
(FORWARDED_ALLOW_IPS) so that aigw's rule is the one under test."""

from __future__ import annotations

import itertools

import httpx
import openai
import pytest

from gateway.setup import gateway_create
from tests.conftest import _server_env, _wait_until_server_is_quiet
from tests.factories import ResourceGroupFactory
from tests.support.live_server import LiveServer

LIMIT = 5
CHAT = {"model": "mock/echo", "messages": [{"role": "user", "content": "Hi"}]}
_addresses = itertools.count(10)


@pytest.fixture(scope="module")
def proxied_server(django_db_setup, django_db_blocker):
    env = {
        **_server_env(),
        "AIGW_INVALID_KEY_LIMIT": str(LIMIT),
        "AIGW_INVALID_KEY_WINDOW_SECONDS": "60",
        "AIGW_TRUSTED_PROXIES": "127.0.0.1",
        "FORWARDED_ALLOW_IPS": "192.0.2.254",
    }
    server = LiveServer(env)
    yield server
    server.stop()


@pytest.fixture
def server(proxied_server, transactional_db):
    from gateway.services import mock_provider_ensure

    mock_provider_ensure()
    yield proxied_server
    _wait_until_server_is_quiet()


@pytest.fixture
def address() -> str:
    """A client address no other test uses."""
    return f"203.0.113.{next(_addresses)}"


def chat(server, address: str, secret: str | None = None, forwarded_for: str | None = None) -> httpx.Response:
    headers = {"x-forwarded-for": forwarded_for or address}
    if secret is not None:
        headers["authorization"] = f"Bearer {secret}"
    return httpx.post(f"{server.v1}/chat/completions", json=CHAT, headers=headers, timeout=10)


def exhaust(server, address: str) -> None:
    for n in range(LIMIT):
        assert chat(server, address, secret=f"aigw_wrong{n}").status_code == 401


def assert_throttled(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert 1 <= int(response.headers["retry-after"]) <= 60
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "rate_limit_exceeded" and error["param"] is None
    assert "invalid" in error["message"] or "incorrect" in error["message"]


def new_secret() -> str:
    _, _, secret = gateway_create(resource_group=ResourceGroupFactory(), name="throttle")
    return secret


def test_after_the_limit_an_address_sending_bad_keys_gets_429_with_retry_after(server, address):
    exhaust(server, address)

    assert_throttled(chat(server, address, secret="aigw_wrong-again"))
    assert_throttled(chat(server, address))  # no key at all counts too
    client = openai.OpenAI(
        api_key="aigw_still-wrong",
        base_url=server.v1,
        max_retries=0,
        default_headers={"x-forwarded-for": address},
    )
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(**CHAT)
    assert raised.value.code == "rate_limit_exceeded"


def test_a_valid_key_from_the_throttled_address_is_still_served(server, address):
    secret = new_secret()
    exhaust(server, address)
    assert_throttled(chat(server, address, secret="aigw_wrong-again"))

    served = chat(server, address, secret=secret)
    assert served.status_code == 200, served.text
    assert served.json()["choices"][0]["message"]["content"] == "Echo: Hi"
    # A flood of bad keys from that address is refused, and the valid key keeps working.
    for n in range(30):
        assert_throttled(chat(server, address, secret=f"aigw_flood{n}"))
    assert chat(server, address, secret=secret).status_code == 200


def test_other_addresses_are_not_throttled_by_one_noisy_address(server, address):
    exhaust(server, address)
    assert_throttled(chat(server, address, secret="aigw_wrong-again"))

    neighbour = f"198.51.100.{next(_addresses)}"
    response = chat(server, neighbour, secret="aigw_wrong")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_a_client_cannot_dodge_the_throttle_by_writing_its_own_x_forwarded_for(server, address):
    # The client sends a new made-up address each time; the trusted proxy appends the real one.
    for n in range(LIMIT):
        assert chat(server, address, secret="aigw_wrong", forwarded_for=f"192.0.2.{n}, {address}").status_code == 401

    assert_throttled(chat(server, address, secret="aigw_wrong", forwarded_for=f"192.0.2.99, {address}"))


def test_revoked_or_valid_keys_do_not_count_towards_the_limit(server, address):
    secret = new_secret()
    for _ in range(LIMIT * 2):
        assert chat(server, address, secret=secret).status_code == 200

    response = chat(server, address, secret="aigw_wrong")
    assert response.status_code == 401
