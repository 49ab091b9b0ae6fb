"""No usage event is lost while the database is unreachable: a warm key keeps being served, each
answer's usage event waits in the spool and lands, exactly once, when the database is back.

The fault is made to happen, on each backend: on PostgreSQL the server reaches the database
through a loopback TCP link that the test cuts (every connection reset, then connection
refused) and restores; on the embedded default the test holds SQLite's exclusive lock longer
than the server's busy timeout, so every write fails with "database is locked"."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager

import openai
import pytest
from django.db import connection

from gateway.setup import gateway_create
from tests.conftest import _server_env, _wait_until_server_is_quiet
from tests.factories import ResourceGroupFactory
from tests.support.errors import assert_service_unavailable
from tests.support.live_server import LiveServer, database_url
from tests.support.tcp_link import TcpLink
from usage.models import UsageEvent

CHAT = {"model": "mock/echo", "messages": [{"role": "user", "content": "Hello there, gateway!"}]}


@contextmanager
def _unreachable_database() -> Iterator[tuple[dict[str, str], object]]:
    """(the server's environment, a context manager that makes the database fail while open)."""
    settings_dict = connection.settings_dict
    if connection.vendor == "postgresql":
        link = TcpLink((settings_dict.get("HOST") or "127.0.0.1", int(settings_dict.get("PORT") or 5432)))

        @contextmanager
        def outage():
            link.cut()
            yield
            link.restore()

        env = {"DATABASE_URL": database_url({**settings_dict, "HOST": "127.0.0.1", "PORT": link.port})}
        try:
            yield env, outage
        finally:
            link.close()
        return

    @contextmanager
    def locked():
        holder = sqlite3.connect(settings_dict["NAME"], isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        yield
        holder.execute("ROLLBACK")
        holder.close()

    yield {"AIGW_SQLITE_TIMEOUT_SECONDS": "0.2"}, locked


@pytest.fixture(params=["in memory", "past the memory cap"])
def outage_server(request, transactional_db):
    """The server, and a context manager that makes its database fail. "past the memory cap":
    the server holds at most 5 waiting events in memory, so most of the outage's events wait only
    in its spool file and are read back from it."""
    from gateway.services import mock_provider_ensure

    mock_provider_ensure()
    cap = {"AIGW_USAGE_MAX_QUEUED_EVENTS": "5"} if request.param == "past the memory cap" else {}
    with _unreachable_database() as (env, outage):
        server = LiveServer({**_server_env(), **env, **cap})
        try:
            yield server, outage
        finally:
            server.stop()
    _wait_until_server_is_quiet()


def _answered(client: openai.OpenAI, count: int) -> list[str]:
    """The request ids of the `count` chat completions answered 200."""
    ids = []
    for _ in range(count):
        response = client.chat.completions.with_raw_response.create(**CHAT)
        response.parse()
        ids.append(response.headers["x-request-id"])
    return ids


def _answered_for(client: openai.OpenAI, seconds: float) -> list[str]:
    """The request ids of the chat completions answered 200, sent one after another for `seconds`."""
    ids, until = [], time.monotonic() + seconds
    while time.monotonic() < until:
        ids += _answered(client, 1)
    return ids


def _events_of(key, expected: int, timeout: float = 30.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        ids = list(UsageEvent.objects.filter(api_key=key).values_list("request_id", flat=True))
        if len(ids) >= expected or time.monotonic() > deadline:
            return ids
        time.sleep(0.1)


def test_usage_events_of_requests_answered_while_the_database_is_down_land_when_it_is_back(outage_server, request):
    server, outage = outage_server
    _, key, secret = gateway_create(resource_group=ResourceGroupFactory(), name="outage")
    client = openai.OpenAI(base_url=server.v1, api_key=secret, max_retries=0)

    before = _answered(client, 10)  # the key is warm: it is served without the database
    assert len(_events_of(key, 10)) == 10
    with outage():
        during = _answered_for(client, seconds=2.0)  # ten times the server's SQLite busy timeout
    after = _answered(client, 10)

    answered = before + during + after
    events = _events_of(key, len(answered))
    missing = set(answered) - set(events)
    assert not missing, f"{len(missing)} of {len(answered)} answered requests have no usage event"
    assert sorted(events) == sorted(answered)  # and none is metered twice
    log = server.log_path.read_text()
    assert "usage events wait for the database" in log  # the outage was seen, and said
    assert "usage events reach the database again" in log
    if "past the memory cap" in request.node.callspec.id:
        assert "usage events past the memory cap read back from" in log  # they waited on disk only


def test_a_key_not_yet_loaded_gets_503_with_retry_after_while_the_database_is_down(outage_server):
    server, outage = outage_server
    _, _, secret = gateway_create(resource_group=ResourceGroupFactory(), name="cold")
    client = openai.OpenAI(base_url=server.v1, api_key=secret, max_retries=0)
    with outage(), pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(**CHAT)
    assert_service_unavailable(refused.value, "database")
    assert client.chat.completions.create(**CHAT).choices  # served once the database is back
