"""A request for a hostname that is not in ALLOWED_HOSTS gets a page that says how to fix it,
and the server says at start-up when ALLOWED_HOSTS holds only loopback names."""

from __future__ import annotations

import logging

import pytest

from config.asgi import warn_if_only_loopback_hosts

pytestmark = pytest.mark.django_db


def test_a_foreign_host_gets_a_400_page_that_explains_allowed_hosts(client, settings):
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
    response = client.get("/accounts/login/", HTTP_HOST="aigw.example.com")

    assert response.status_code == 400
    page = response.content.decode()
    assert "ALLOWED_HOSTS" in page and "CSRF_TRUSTED_ORIGINS" in page
    assert "aigw.example.com" in page  # the example, in the house layout
    assert 'class="topbar"' in page
    assert "unsafe-inline" not in response["Content-Security-Policy"]


def test_the_start_up_warns_when_allowed_hosts_holds_only_loopback_names(settings, caplog):
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
    with caplog.at_level(logging.WARNING, logger="config.asgi"):
        assert warn_if_only_loopback_hosts()
    assert "ALLOWED_HOSTS" in caplog.text and "400" in caplog.text


def test_the_start_up_is_quiet_when_a_real_hostname_is_allowed(settings, caplog):
    settings.ALLOWED_HOSTS = ["127.0.0.1", "aigw.example.com"]
    with caplog.at_level(logging.WARNING, logger="config.asgi"):
        assert not warn_if_only_loopback_hosts()
    assert caplog.text == ""
