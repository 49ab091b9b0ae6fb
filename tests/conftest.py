"""Shared fixtures: services check, the resource group most tests work in, the fake upstream and
the live aigw server. Helpers for the people a test acts as are in tests/support/people.py."""

from __future__ import annotations

import time
import uuid

import pytest
from django.conf import settings

from tests.factories import ResourceGroupFactory
from tests.support.fake_upstream import FakeUpstream
from tests.support.live_server import LiveServer, database_url

REDIS_PREFIX = f"aigwtest:{uuid.uuid4().hex[:8]}"


def pytest_sessionstart(session) -> None:
    """With AIGW_REQUIRE_SERVICES=true (CI), PostgreSQL and Redis must be configured and up."""
    if not settings.AIGW_REQUIRE_SERVICES:
        return
    engine = settings.DATABASES["default"]["ENGINE"]
    if "postgresql" not in engine:
        pytest.exit(f"AIGW_REQUIRE_SERVICES is set but DATABASE_URL is not PostgreSQL ({engine})", returncode=3)
    if not settings.REDIS_URL:
        pytest.exit("AIGW_REQUIRE_SERVICES is set but REDIS_URL is empty", returncode=3)
    import redis

    try:
        redis.from_url(settings.REDIS_URL).ping()
    except redis.RedisError as exc:
        pytest.exit(f"Redis at {settings.REDIS_URL} is not reachable: {exc}", returncode=3)


@pytest.fixture(autouse=True)
def _isolated_redis_prefix(settings):
    settings.AIGW_REDIS_PREFIX = REDIS_PREFIX


@pytest.fixture(autouse=True)
def _fast_password_hashing(request, settings):
    """PBKDF2's deliberate slowness is for production, not for creating test users. Not for
    tests that sign in to the live server, whose process keeps the real hashers."""
    if not {"live", "cluster", "page"} & set(request.fixturenames):
        settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def group_name() -> str | None:
    """The name of the `group` fixture's resource group; None lets the factory number it. A test
    module whose assertions name the group overrides this fixture with the name it expects."""
    return None


@pytest.fixture
def group(group_name):
    """The resource group the test's gateways, keys and members belong to."""
    return ResourceGroupFactory() if group_name is None else ResourceGroupFactory(name=group_name)


@pytest.fixture(scope="session")
def fake_upstream():
    upstream = FakeUpstream().start()
    yield upstream
    upstream.stop()


def _server_env() -> dict[str, str]:
    from django.db import connection

    return {
        "DATABASE_URL": database_url(connection.settings_dict),
        "REDIS_URL": settings.REDIS_URL,
        "AIGW_REDIS_PREFIX": REDIS_PREFIX,
        "SECRET_KEY": settings.SECRET_KEY,
        "AIGW_ENCRYPTION_KEYS": ",".join(settings.AIGW_ENCRYPTION_KEYS),
        "AIGW_DATA_DIR": str(settings.DATA_DIR),
        "AIGW_UPSTREAM_TIMEOUT_SECONDS": "1.5",
        "AIGW_MAX_BODY_BYTES": str(4 * 1024 * 1024),  # the shipped default
        "DEBUG": "false",
        # The jobs tests move the clock themselves; a server running the jobs on the real clock
        # in the same (SQLite) test database would write periods under them.
        "AIGW_IN_PROCESS_JOBS": "false",
        # Every test sends from 127.0.0.1; the invalid-key throttle has its own server and tests
        # (tests/e2e/test_invalid_key_throttle.py), so the shared servers never throttle a test.
        "AIGW_INVALID_KEY_LIMIT": "100000",
    }


@pytest.fixture(scope="session")
def aigw_server(django_db_setup, django_db_blocker):
    """The aigw server as its own process, on the test database and the test Redis prefix."""
    server = LiveServer(_server_env())
    yield server
    server.stop()


@pytest.fixture(scope="session")
def aigw_cluster(django_db_setup, django_db_blocker):
    """Three aigw worker processes sharing counters in Redis; one process on the embedded
    default, whose counters live in process memory."""
    server = LiveServer(_server_env(), workers=3 if settings.REDIS_URL else 1)
    yield server
    server.stop()


@pytest.fixture
def cluster(aigw_cluster, transactional_db):
    """The multi-process server, with the test's data committed."""
    from gateway.services import mock_provider_ensure

    mock_provider_ensure()
    yield aigw_cluster
    _wait_until_server_is_quiet()


@pytest.fixture
def live(aigw_server, transactional_db):
    """The live server, with the test's data committed so the server process sees it."""
    from gateway.services import mock_provider_ensure

    mock_provider_ensure()
    yield aigw_server
    _wait_until_server_is_quiet()


def _wait_until_server_is_quiet(timeout: float = 5.0) -> None:
    """Wait until the server process has no statement or transaction under way in the test
    database, so that the flush after the test does not deadlock with a late usage write."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return  # SQLite writers queue on the database lock instead of deadlocking
    quiet_polls, deadline = 0, time.monotonic() + timeout
    with connection.cursor() as cursor:
        while quiet_polls < 3 and time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND state IN ('active', 'idle in transaction')"
            )
            quiet_polls = quiet_polls + 1 if cursor.fetchone()[0] == 0 else 0
            time.sleep(0.03)


def wait_for_usage_event(request_id: str, timeout: float = 10.0):
    """The usage event of `request_id`, once the server's batch writer has stored it."""
    from usage.models import UsageEvent

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = UsageEvent.objects.filter(request_id=request_id).first()
        if event is not None:
            return event
        time.sleep(0.05)
    raise AssertionError(f"no usage event {request_id} after {timeout}s")
