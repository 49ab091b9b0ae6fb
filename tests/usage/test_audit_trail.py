"""The audit trail (SPEC §7): every change leaves one event with who, when, through what, before
and after; the console, the API (session or personal token) and aigw itself are told apart;
secrets never appear; an event is never changed. Idempotent retries of creates (Idempotency-Key)
create, and audit, once (tests/gateway/test_api_guards.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from core.audit import audit_actor
from core.models import AuditEvent
from gateway.models import Role
from gateway.setup import gateway_create
from keys.services import api_key_create, api_keys_mark_expired
from quotas.services import api_keys_suspend_for_token_quota
from tests.support.people import api_client_with_token, member_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_user(group):
    return member_of(group, Role.ADMIN, username="ada")


def test_a_key_created_rotated_edited_and_revoked_through_the_api_leaves_four_events(group, admin_user):
    gateway, first_key, first_secret = gateway_create(resource_group=group, name="prod")
    client = api_client_with_token(admin_user)
    AuditEvent.objects.all().delete()  # only the API's events below

    created = client.post(f"/api/v1/gateways/{gateway.pk}/api-keys", {"name": "ci"}, format="json").json()
    rotated = client.post(f"/api/v1/api-keys/{created['id']}/rotate").json()
    client.patch(f"/api/v1/api-keys/{created['id']}", {"name": "ci-2"}, format="json")
    client.post(f"/api/v1/api-keys/{created['id']}/revoke")

    events = list(AuditEvent.objects.order_by("id"))
    assert [e.action for e in events] == ["api_key.create", "api_key.rotate", "api_key.update", "api_key.revoke"]
    assert {(e.actor_id, e.actor_name, e.via, e.resource_group_id) for e in events} == {
        (admin_user.pk, "ada", "api", group.pk)
    }
    assert {e.target_id for e in events} == {str(created["id"])}
    assert events[1].before["prefix"] != events[1].after["prefix"]
    assert (events[2].before["name"], events[2].after["name"]) == ("ci", "ci-2")
    assert (events[3].before["status"], events[3].after["status"]) == ("active", "revoked")
    stored = json.dumps([[e.before, e.after] for e in events])
    for secret in (created["secret"], rotated["secret"], first_secret, first_key.hashed_secret):
        assert secret not in stored


def test_a_change_in_the_console_is_attributed_to_the_signed_in_user(client, group, admin_user):
    gateway, _, _ = gateway_create(resource_group=group, name="prod")
    client.force_login(admin_user)

    client.post(
        reverse("gateway-token-quota", args=[gateway.pk]),
        {"limit_tokens": "5000", "refresh_period": "daily", "mode": "soft"},
    )

    event = AuditEvent.objects.get(action="token_quota.create")
    assert (event.actor, event.via, event.target_id) == (admin_user, "console", str(gateway.pk))
    assert event.after == {"level": "gateway", "limit_tokens": 5000, "refresh_period": "daily", "mode": "soft"}


def test_changes_by_aigw_itself_have_no_actor(group):
    gateway, api_key, _ = gateway_create(resource_group=group, name="prod")
    now = datetime(2026, 11, 1, tzinfo=UTC)
    with time_machine.travel(now, tick=False):
        expiring, _ = api_key_create(gateway=gateway, name="short", expires_at=now + timedelta(minutes=1))
    api_keys_suspend_for_token_quota(api_key_ids=[api_key.pk])
    api_keys_mark_expired(now=now + timedelta(minutes=2))
    api_keys_mark_expired(now=now + timedelta(minutes=3))  # a second run changes nothing

    suspended = AuditEvent.objects.get(action="api_key.suspend")
    expired = AuditEvent.objects.get(action="api_key.expire")
    assert (suspended.actor, suspended.via, suspended.target_id) == (None, "system", str(api_key.pk))
    assert suspended.after["suspended_reason"] == "token_quota"
    assert (expired.target_id, expired.after["status"]) == (str(expiring.pk), "expired")


def test_a_management_command_attributes_its_changes_with_audit_actor(group, admin_user):
    with audit_actor(admin_user):
        gateway_create(resource_group=group, name="scripted")
    event = AuditEvent.objects.get(action="api_key.create")
    assert (event.actor, event.via) == (admin_user, "command")


def test_an_audit_event_is_never_changed(group):
    gateway, api_key, _ = gateway_create(resource_group=group, name="prod")
    event = AuditEvent.objects.filter(action="api_key.create").get()
    event.action = "api_key.nothing"
    with pytest.raises(ValueError, match="never changed"):
        event.save()
    assert AuditEvent.objects.get(pk=event.pk).action == "api_key.create"
