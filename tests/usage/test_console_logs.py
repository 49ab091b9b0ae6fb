"""The console's Logs and Audit trail pages (SPEC §7): filters as in the API, keyset pages that
hold while new rows arrive, the event detail, the CSV export link, and the role rules (another
group's event is a 404; developers and viewers cannot read the audit trail)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from core.audit import audit_actor
from gateway.models import Role
from gateway.services import gateway_update
from gateway.setup import gateway_create
from tests.factories import MembershipFactory, ResourceGroupFactory, UsageEventFactory, UserFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def _request_ids(body: str) -> list[str]:
    return re.findall(r'data-request-id="([^"]+)"', body)


@pytest.fixture
def setup(client):
    group, other = ResourceGroupFactory(name="support"), ResourceGroupFactory(name="other")
    auditor = UserFactory()
    MembershipFactory(user=auditor, resource_group=group, role=Role.AUDITOR)
    gateway, key, _ = gateway_create(resource_group=group, name="helpdesk")
    _, other_key, _ = gateway_create(resource_group=other, name="not-yours")
    client.force_login(auditor)
    return client, group, gateway, key, other_key


def test_logs_page_by_page_newest_first_even_while_new_requests_arrive(setup):
    client, _group, _gateway, key, other_key = setup
    for n in range(120):
        UsageEventFactory(api_key=key, request_id=f"req_{n:03d}", created_at=T0 + timedelta(seconds=n // 2))
    UsageEventFactory(api_key=other_key, request_id="req_other", created_at=T0)

    first = client.get("/usage/logs/").content.decode()
    next_link = re.search(r'href="\?(cursor=[^"]+)" data-next', first).group(1).replace("&amp;", "&")
    UsageEventFactory(api_key=key, request_id="req_new", created_at=T0 + timedelta(hours=1))  # arrives meanwhile
    second = client.get(f"/usage/logs/?{next_link}").content.decode()
    third_link = re.search(r'href="\?(cursor=[^"]+)" data-next', second).group(1).replace("&amp;", "&")
    third = client.get(f"/usage/logs/?{third_link}").content.decode()

    pages = [_request_ids(first), _request_ids(second), _request_ids(third)]
    assert [len(page) for page in pages] == [50, 50, 20]
    assert pages[0][:2] == ["req_119", "req_118"] and pages[2][-1] == "req_000"
    assert len(set(sum(pages, []))) == 120  # no request twice, none skipped, the new one not mixed in
    assert "req_other" not in first + second + third
    assert "No older requests." in third


def test_logs_filter_like_the_api_and_name_a_bad_filter(setup):
    client, _group, gateway, key, _ = setup
    UsageEventFactory(api_key=key, request_id="req_ok", created_at=T0, model_requested="gpt-4o-mini")
    UsageEventFactory(
        api_key=key, request_id="req_429", created_at=T0, status_code=429, error_code="rate_limit_exceeded"
    )

    failed = client.get("/usage/logs/", {"status": "error", "gateway": gateway.pk}).content.decode()
    by_model = client.get("/usage/logs/", {"model": "gpt-4o-mini", "since": "2026-11-20T07:00"}).content.decode()
    bad = client.get("/usage/logs/", {"since": "last tuesday"}).content.decode()

    assert _request_ids(failed) == ["req_429"]
    assert _request_ids(by_model) == ["req_ok"]
    assert "Since: Enter an ISO 8601 datetime" in bad and _request_ids(bad) == []
    assert f'href="/api/v1/usage-events?status=error&amp;gateway={gateway.pk}&amp;format=csv"' in failed


def test_the_event_detail_shows_every_token_type_and_hides_other_groups(setup):
    client, _group, _gateway, key, other_key = setup
    event = UsageEventFactory(
        api_key=key,
        created_at=T0,
        input_tokens=1200,
        cached_input_tokens=1024,
        output_tokens=300,
        reasoning_tokens=120,
        total_tokens=1500,
        cost_usd=Decimal("0.000258"),
    )
    other = UsageEventFactory(api_key=other_key, created_at=T0)

    body = client.get(f"/usage/logs/{event.pk}/").content.decode()

    assert event.request_id in body and "$0.000258" in body and "1,024" in body and ">120<" in body
    assert client.get(f"/usage/logs/{other.pk}/").status_code == 404


def test_the_audit_trail_shows_who_changed_what_and_only_to_auditing_roles(setup, client):
    _client, group, gateway, _key, _ = setup
    admin = UserFactory(username="ada")
    MembershipFactory(user=admin, resource_group=group, role=Role.ADMIN)
    with audit_actor(admin, via="console"):
        gateway_update(gateway=gateway, status="disabled")

    body = _client.get("/audit/", {"target_type": "gateway"}).content.decode()
    assert "gateway.update" in body and "ada" in body and "enabled" in body and "disabled" in body
    assert 'method="post"' not in body.split("<main", 1)[1]  # nothing to change or delete

    for role in (Role.DEVELOPER, Role.VIEWER):
        user = UserFactory()
        MembershipFactory(user=user, resource_group=group, role=role)
        client.force_login(user)
        assert client.get("/audit/").status_code == 403
