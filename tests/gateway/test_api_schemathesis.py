"""Schemathesis against the OpenAPI schema at /api/schema/: generated requests to every
management API operation, as a superuser with a personal API token, must never get a server
error, and every answer must match the schema (status code, content type, body)."""

from __future__ import annotations

import pytest
import schemathesis
import yaml
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings

from gateway.services import resource_group_create
from gateway.setup import gateway_create
from keys.services import api_token_create
from tests.factories import UserFactory


@pytest.fixture
def api_schema(db, client):
    """The schema as served, with a superuser's token on every request and a gateway to act on.

    Requests go to Django's WSGI handler in this process, inside the test's transaction; like
    Django's test client, the handler must not close the database connection after each one."""
    user = UserFactory(is_superuser=True, is_staff=True)
    group = resource_group_create(name="fuzz", owner=user)
    gateway_create(resource_group=group, name="fuzzed", created_by=user)
    _, token = api_token_create(user=user, name="schemathesis")
    raw = yaml.safe_load(client.get("/api/schema/").content)
    # After the test client's last request: it reconnects these signals when it finishes.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    schema = schemathesis.from_dict(raw, app=get_wsgi_application(), validate_schema=True)
    schema.token = token
    yield schema
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


schema = schemathesis.from_pytest_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=12,
    derandomize=True,  # the same examples on every run: CI fails on code changes, never on luck
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_operation_gives_a_server_error_or_breaks_the_schema(case, api_schema):
    # On the case itself, so that the check for ignored authentication can take it away.
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {api_schema.token}"}
    case.cookies = {}
    response = case.call()
    case.validate_response(response)
