"""The attack of issue 11, step by step over real HTTP: a user with no role anywhere makes a
resource group of their own (so becomes its owner) and tries to point the instance's OpenAI
provider at an address they control, to collect the real provider key and every group's prompts.
Providers are the platform admin's (SPEC §1): every step is refused, the listener hears nothing,
and the next request of another group still goes to the real upstream with the real key."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from openai import OpenAI

from gateway.models import Provider
from gateway.services import model_create, provider_create
from gateway.setup import gateway_create
from keys.services import api_token_create
from tests.factories import ResourceGroupFactory, UserFactory

REAL_KEY = "sk-real-provider-key-4242"


class _Listener(BaseHTTPRequestHandler):
    """What the attacker runs: records every request and its Authorization header."""

    heard: list[tuple[str, str]] = []

    def _record(self) -> None:
        self.heard.append((self.path, self.headers.get("Authorization", "")))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"data": []}')

    do_GET = do_POST = _record

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def listener():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Listener)
    _Listener.heard = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()
    server.server_close()


def test_a_group_owner_cannot_take_over_a_provider_from_the_api_or_the_console(live, fake_upstream, listener):
    openai = provider_create(name="openai", kind="openai", base_url=fake_upstream.base_url, credential=REAL_KEY)
    model_create(name="fake-model", provider=openai)
    _, _, victim_secret = gateway_create(resource_group=ResourceGroupFactory(name="victims"), name="prod")

    attacker = UserFactory(username="mallory")
    _, token = api_token_create(user=attacker, name="cli")
    api = httpx.Client(base_url=f"{live.url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert api.post("/resource-groups", json={"name": "mallory-team"}).json()["role"] == "owner"

    takeover = api.patch(f"/providers/{openai.pk}", json={"base_url": listener})
    created = api.post("/providers", json={"name": "mine", "kind": "openai", "base_url": listener})
    deleted = api.delete(f"/providers/{openai.pk}")
    console = httpx.Client(base_url=live.url, timeout=10, follow_redirects=False)
    console.cookies.update(_session_of(attacker))
    csrf = {"X-CSRFToken": _csrf(console)}
    edited = console.post(
        f"/providers/{openai.pk}/edit/", data={"name": "openai", "base_url": listener, "credential": ""}, headers=csrf
    )
    tested = console.post(f"/providers/{openai.pk}/test/", headers=csrf)

    assert [r.status_code for r in (takeover, created, deleted, edited, tested)] == [403, 403, 403, 403, 403]
    assert "platform admins" in takeover.json()["detail"]
    openai.refresh_from_db()
    assert openai.base_url == fake_upstream.base_url and openai.get_credential() == REAL_KEY
    assert not Provider.objects.filter(name="mine").exists()

    fake_upstream.requests.clear()
    reply = OpenAI(base_url=live.v1, api_key=victim_secret).chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "our secret plans"}]
    )

    assert reply.choices[0].message.content
    assert fake_upstream.requests[-1]["headers"]["authorization"] == f"Bearer {REAL_KEY}"
    assert _Listener.heard == []


def _session_of(user) -> dict[str, str]:
    """A signed-in console session cookie for `user`, as the browser would hold it."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    return {settings.SESSION_COOKIE_NAME: client.cookies[settings.SESSION_COOKIE_NAME].value}


def _csrf(console: httpx.Client) -> str:
    console.get("/providers/")
    return console.cookies.get("csrftoken") or ""


@pytest.mark.django_db
def test_a_platform_admin_who_moves_a_provider_sends_it_no_old_credential(client, listener):
    openai = provider_create(name="openai", kind="openai", base_url="https://api.openai.com/v1", credential=REAL_KEY)
    client.force_login(UserFactory(is_staff=True))

    client.post(f"/providers/{openai.pk}/edit/", {"name": "openai", "base_url": listener, "credential": ""})
    result = client.post(f"/providers/{openai.pk}/test/", headers={"HX-Request": "true"})

    assert result.status_code == 200
    assert _Listener.heard == [("/v1/models", "")]
    openai.refresh_from_db()
    assert openai.base_url == listener and openai.get_credential() == ""
