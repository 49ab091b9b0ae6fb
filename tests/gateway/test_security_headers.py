"""Every console page carries the hardening headers of SPEC §9: a Content-Security-Policy that
allows only our own files (no inline script or style, no eval), X-Frame-Options DENY and
nosniff; with AIGW_HTTPS=true, Secure cookies, HSTS and a redirect to HTTPS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

from gateway.setup import gateway_create
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def assert_hardened(response) -> None:
    policy = response["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_every_console_page_carries_the_hardening_headers(client):
    user = UserFactory(is_staff=True)
    membership = MembershipFactory(user=user)
    gateway, _, _ = gateway_create(resource_group=membership.resource_group, name="headers")
    client.force_login(user)
    paths = [
        reverse("gateway-list"),
        reverse("gateway-create"),
        reverse("gateway-detail", args=[gateway.pk]),
        reverse("api-key-list"),
        reverse("group-list"),
        reverse("provider-list"),
        reverse("api-token-list"),
        reverse("usage-dashboard"),
        reverse("usage-logs"),
        reverse("audit-trail"),
        reverse("api-docs"),
        reverse("api-docs") + "?script",
    ]
    for path in paths:
        response = client.get(path)
        assert response.status_code == 200, path
        assert_hardened(response)

    client.logout()
    assert_hardened(client.get(reverse("login")))
    assert_hardened(client.get("/no-such-page/"))


def test_console_pages_hold_no_inline_script_or_style(client):
    user = UserFactory(is_staff=True)
    MembershipFactory(user=user)
    client.force_login(user)
    for path in (reverse("gateway-list"), reverse("api-token-list"), reverse("usage-dashboard"), reverse("api-docs")):
        page = client.get(path).content.decode()
        assert "<style" not in page, path
        assert ' style="' not in page, path
        assert " onclick=" not in page and " onsubmit=" not in page, path
        for tag in page.split("<script")[1:]:
            opening = tag.split(">", 1)[0]
            assert " src=" in opening or 'type="application/json"' in opening, (path, opening)


HTTPS_PROBE = """
import json, django
django.setup()
from django.conf import settings
from django.test import Client
client = Client()
plain = client.get("/accounts/login/")
secure = client.get("/accounts/login/", secure=True)
forwarded = client.get("/accounts/login/", HTTP_X_FORWARDED_PROTO="https")
print(json.dumps({
    "plain_status": plain.status_code, "plain_location": plain.get("Location", ""),
    "hsts": secure.get("Strict-Transport-Security", ""),
    "csrf_cookie_secure": bool(secure.cookies["csrftoken"]["secure"]),
    "session_cookie_secure": settings.SESSION_COOKIE_SECURE,
    "forwarded_status": forwarded.status_code,
}))
"""


def probe(**env: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", HTTPS_PROBE],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "ALLOWED_HOSTS": "testserver", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_with_aigw_https_cookies_are_secure_hsts_is_sent_and_http_is_redirected():
    seen = probe(AIGW_HTTPS="true", AIGW_TRUSTED_PROXIES="")
    assert seen["plain_status"] == 301 and seen["plain_location"].startswith("https://")
    assert seen["hsts"].startswith("max-age=31536000")
    assert seen["csrf_cookie_secure"] and seen["session_cookie_secure"]
    # No trusted proxy: a client's own X-Forwarded-Proto does not pass for HTTPS.
    assert seen["forwarded_status"] == 301


def test_behind_trusted_proxies_x_forwarded_proto_marks_the_request_as_https():
    seen = probe(AIGW_HTTPS="true", AIGW_TRUSTED_PROXIES="127.0.0.1")
    assert seen["forwarded_status"] == 200


def test_without_aigw_https_nothing_is_forced():
    seen = probe(AIGW_HTTPS="false")
    assert seen["plain_status"] == 200 and not seen["hsts"]
    assert not seen["csrf_cookie_secure"] and not seen["session_cookie_secure"]


def test_aigw_https_accepts_only_true_or_false():
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "AIGW_HTTPS": "yes"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "AIGW_HTTPS must be true or false" in result.stderr
