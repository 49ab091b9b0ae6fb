"""Who reads usage, logs and the audit trail (SPEC §1, §7), in the API and in the console alike:
every read goes through the policy; a viewer gets 403 on all of it; a group whose settings the
user sees but whose usage their role may not read is a 403, another group's object a 404;
developers read usage but not the audit trail; the API and the console filter with one FilterSet
and page with one cursor pager."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from core.models import AuditEvent
from gateway.models import Role
from gateway.setup import gateway_create
from tests.factories import MembershipFactory, ResourceGroupFactory, UsageEventFactory, UserFactory
from tests.support.people import api_client_as, member_of

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
EVENTS = "/api/v1/usage-events"
AGGREGATES = "/api/v1/usage/aggregates"
AUDIT = "/api/v1/audit-events"


class World:
    """Two resource groups, each with a gateway, its key, a usage event and an audit event."""

    def __init__(self) -> None:
        self.group, self.other = ResourceGroupFactory(name="support"), ResourceGroupFactory(name="other")
        self.gateway, self.key, _ = gateway_create(resource_group=self.group, name="helpdesk")
        self.other_gateway, self.other_key, _ = gateway_create(resource_group=self.other, name="not-yours")
        self.event = UsageEventFactory(api_key=self.key, request_id="req_mine", created_at=T0)
        self.other_event = UsageEventFactory(api_key=self.other_key, request_id="req_other", created_at=T0)
        self.audit = AuditEvent.objects.create(
            resource_group=self.group, action="gateway.update", target_type="gateway"
        )
        self.other_audit = AuditEvent.objects.create(
            resource_group=self.other, action="gateway.update", target_type="gateway"
        )

    def member(self, role: str, group=None):
        return member_of(group or self.group, role)


@pytest.fixture
def world() -> World:
    return World()


def console_as(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def api_urls(world: World) -> list[str]:
    return [
        EVENTS,
        f"{EVENTS}?format=csv",
        f"{EVENTS}/{world.event.pk}",
        f"{AGGREGATES}?since=2026-11-01T00:00:00Z",
        AUDIT,
        f"{AUDIT}/{world.audit.pk}",
    ]


def console_urls(world: World) -> list[str]:
    return [
        "/usage/",
        f"/usage/?group={world.group.pk}",
        f"/usage/?gateway={world.gateway.pk}",
        f"/usage/?api_key={world.key.pk}",
        "/usage/logs/",
        f"/usage/logs/{world.event.pk}/",
        "/audit/",
    ]


def request_ids(body: str) -> list[str]:
    return re.findall(r'data-request-id="([^"]+)"', body)


# Viewers ------------------------------------------------------------------------------------


def test_a_viewer_gets_403_on_every_usage_logs_csv_aggregates_and_audit_endpoint_of_the_api(world):
    viewer = api_client_as(world.member(Role.VIEWER))

    assert {url: viewer.get(url).status_code for url in api_urls(world)} == dict.fromkeys(api_urls(world), 403)
    refused_csv = viewer.get(EVENTS, {"format": "csv"})
    assert refused_csv["Content-Type"].startswith("application/json")
    assert "usage" in refused_csv.json()["detail"]
    # The settings of the group stay readable.
    assert viewer.get(f"/api/v1/gateways/{world.gateway.pk}").status_code == 200


def test_a_viewer_gets_the_403_page_on_every_usage_logs_and_audit_page_of_the_console(world):
    viewer = console_as(world.member(Role.VIEWER))

    assert {url: viewer.get(url).status_code for url in console_urls(world)} == dict.fromkeys(console_urls(world), 403)


def test_a_developer_elsewhere_who_is_viewer_here_gets_403_on_this_groups_scope_and_reads_the_other(world):
    user = world.member(Role.VIEWER)
    MembershipFactory(user=user, resource_group=world.other, role=Role.DEVELOPER)
    api, console = api_client_as(user), console_as(user)

    for scope in (
        {"resource_group": world.group.pk},
        {"gateway": world.gateway.pk},
        {"api_key": world.key.pk},
    ):
        assert api.get(EVENTS, scope).status_code == 403, scope
        assert api.get(EVENTS, {**scope, "format": "csv"}).status_code == 403, scope
        assert api.get(AGGREGATES, scope).status_code == 403, scope
        assert console.get("/usage/logs/", scope).status_code == 403, scope
    assert api.get(f"{EVENTS}/{world.event.pk}").status_code == 403
    assert console.get(f"/usage/logs/{world.event.pk}/").status_code == 403
    for url in console_urls(world)[1:4]:
        assert console.get(url).status_code == 403, url

    assert [row["request_id"] for row in api.get(EVENTS).json()["results"]] == ["req_other"]
    assert request_ids(console.get("/usage/logs/").content.decode()) == ["req_other"]
    dashboard = console.get("/usage/").content.decode()
    assert "not-yours" in dashboard and "helpdesk" not in dashboard


def test_an_auditor_elsewhere_who_is_viewer_here_gets_403_on_this_groups_trail_and_reads_the_other(world):
    user = world.member(Role.VIEWER)
    MembershipFactory(user=user, resource_group=world.other, role=Role.AUDITOR)
    api, console = api_client_as(user), console_as(user)
    others = {event.pk for event in AuditEvent.objects.filter(resource_group=world.other)}

    assert api.get(AUDIT, {"resource_group": world.group.pk}).status_code == 403
    assert api.get(f"{AUDIT}/{world.audit.pk}").status_code == 403
    assert console.get("/audit/", {"resource_group": world.group.pk}).status_code == 403
    assert {row["id"] for row in api.get(AUDIT).json()["results"]} == others
    body = console.get("/audit/").content.decode()
    assert {int(pk) for pk in re.findall(r'data-audit-id="(\d+)"', body)} == others
    assert ">support<" not in body  # the viewer's group is not offered as a filter


# Another group ------------------------------------------------------------------------------


def test_another_groups_objects_are_404_and_filtering_by_them_finds_nothing(world):
    auditor = world.member(Role.AUDITOR)
    api, console = api_client_as(auditor), console_as(auditor)

    assert api.get(f"{EVENTS}/{world.other_event.pk}").status_code == 404
    assert api.get(f"{AUDIT}/{world.other_audit.pk}").status_code == 404
    assert api.get(EVENTS, {"gateway": world.other_gateway.pk}).json()["results"] == []
    assert api.get(AUDIT, {"resource_group": world.other.pk}).json()["results"] == []
    assert console.get(f"/usage/logs/{world.other_event.pk}/").status_code == 404
    for scope in (f"group={world.other.pk}", f"gateway={world.other_gateway.pk}", f"api_key={world.other_key.pk}"):
        assert console.get(f"/usage/?{scope}").status_code == 404, scope
    assert request_ids(console.get("/usage/logs/", {"gateway": world.other_gateway.pk}).content.decode()) == []


# Developers, auditors, platform admins ------------------------------------------------------


def test_a_developer_reads_usage_but_gets_403_on_the_audit_trail(world):
    developer = world.member(Role.DEVELOPER)
    api, console = api_client_as(developer), console_as(developer)

    for url in api_urls(world)[:4]:
        assert api.get(url).status_code == 200, url
    for url in console_urls(world)[:6]:
        assert console.get(url).status_code == 200, url
    assert api.get(AUDIT).status_code == 403
    assert api.get(f"{AUDIT}/{world.audit.pk}").status_code == 403
    assert console.get("/audit/").status_code == 403


def test_an_auditor_reads_usage_and_the_trail_of_their_group_only(world):
    auditor = world.member(Role.AUDITOR)
    api, console = api_client_as(auditor), console_as(auditor)

    mine = {event.pk for event in AuditEvent.objects.filter(resource_group=world.group)}  # gateway.create too

    assert {row["id"] for row in api.get(AUDIT).json()["results"]} == mine
    body = console.get("/audit/").content.decode()
    assert {int(pk) for pk in re.findall(r'data-audit-id="(\d+)"', body)} == mine
    assert [row["request_id"] for row in api.get(EVENTS).json()["results"]] == ["req_mine"]


def test_a_platform_admin_reads_the_usage_and_trail_of_every_group_without_a_role(world):
    instance_wide = AuditEvent.objects.create(resource_group=None, action="provider.update", target_type="provider")
    admin = UserFactory(is_staff=True)
    api, console = api_client_as(admin), console_as(admin)

    assert {row["request_id"] for row in api.get(EVENTS).json()["results"]} == {"req_mine", "req_other"}
    every_event = set(AuditEvent.objects.values_list("pk", flat=True))
    assert {world.audit.pk, world.other_audit.pk, instance_wide.pk} <= every_event
    assert {row["id"] for row in api.get(AUDIT).json()["results"]} == every_event
    assert set(request_ids(console.get("/usage/logs/").content.decode())) == {"req_mine", "req_other"}
    assert console.get(f"/usage/?gateway={world.other_gateway.pk}").status_code == 200
    assert console.get("/audit/").status_code == 200


# One FilterSet, one pager -------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"status": "error"},
        {"status": "429"},
        {"status": "success", "model": "gpt-4o-mini"},
        {"error_code": "rate_limit_exceeded"},
        {"since": "2026-11-20T08:30:00Z", "until": "2026-11-20T10:00:00"},
        {"since": "2026-11-20"},
        {"gateway": "GATEWAY", "status": "error"},
        {"api_key": "KEY"},
    ],
)
def test_the_api_and_the_logs_page_filter_with_one_filterset_and_give_the_same_rows(world, query):
    UsageEventFactory(
        api_key=world.key, request_id="req_ok", created_at=T0 + timedelta(hours=1), model_requested="gpt-4o-mini"
    )
    UsageEventFactory(
        api_key=world.key,
        request_id="req_429",
        created_at=T0 + timedelta(hours=2),
        status_code=429,
        error_code="rate_limit_exceeded",
    )
    UsageEventFactory(api_key=world.key, request_id="req_502", created_at=T0 + timedelta(hours=3), status_code=502)
    query = {
        name: {"GATEWAY": world.gateway.pk, "KEY": world.key.pk}.get(value, value) for name, value in query.items()
    }
    auditor = world.member(Role.AUDITOR)

    from_api = [row["request_id"] for row in api_client_as(auditor).get(EVENTS, query).json()["results"]]
    from_console = request_ids(console_as(auditor).get("/usage/logs/", query).content.decode())

    assert from_console == from_api
    assert "req_other" not in from_api


def test_a_bad_filter_is_named_the_same_in_the_api_and_the_console(world):
    auditor = world.member(Role.AUDITOR)
    bad = {"status": "failed", "gateway": "abc"}

    api_errors = api_client_as(auditor).get(EVENTS, bad).json()
    console = console_as(auditor).get("/usage/logs/", bad).content.decode()

    assert api_errors == {
        "gateway": ["A valid integer is required."],
        "status": ['Must be "success", "error" or an HTTP status code (100-599).'],
    }
    assert "Gateway: A valid integer is required." in console
    assert "Status: Must be &quot;success&quot;, &quot;error&quot; or an HTTP status code" in console
    assert request_ids(console) == []


def test_the_api_and_the_audit_page_filter_with_one_filterset(world):
    actor = UserFactory()
    created = AuditEvent.objects.create(
        resource_group=world.group, actor=actor, action="api_key.create", target_type="api_key", target_id="7"
    )
    auditor = world.member(Role.AUDITOR)
    api, console = api_client_as(auditor), console_as(auditor)

    for query in ({"actor": actor.pk}, {"target_type": "api_key", "target_id": "7"}, {"action": "gateway.update"}):
        from_api = [str(row["id"]) for row in api.get(AUDIT, query).json()["results"]]
        from_console = re.findall(r'data-audit-id="(\d+)"', console.get("/audit/", query).content.decode())
        assert from_console == from_api, query
    assert [row["id"] for row in api.get(AUDIT, {"actor": actor.pk}).json()["results"]] == [created.pk]
    assert "Actor: A valid integer is required." in console.get("/audit/", {"actor": "ada"}).content.decode()


def test_the_logs_page_walks_older_and_back_newer_with_the_apis_cursor(world):
    for n in range(5):
        UsageEventFactory(api_key=world.key, request_id=f"req_{n}", created_at=T0 + timedelta(minutes=n))
    console = console_as(world.member(Role.AUDITOR))

    def link(body: str, name: str) -> str:
        return re.search(rf'href="\?([^"]+)" data-{name}', body).group(1).replace("&amp;", "&")

    first = console.get("/usage/logs/", {"page_size": 2, "gateway": world.gateway.pk}).content.decode()
    second = console.get(f"/usage/logs/?{link(first, 'next')}").content.decode()
    back = console.get(f"/usage/logs/?{link(second, 'previous')}").content.decode()

    assert request_ids(first) == ["req_4", "req_3"]
    assert request_ids(second) == ["req_2", "req_1"]
    assert request_ids(back) == ["req_4", "req_3"]
    assert f"gateway={world.gateway.pk}" in link(second, "next")
    assert console.get("/usage/logs/", {"cursor": "not-a-cursor"}).status_code == 404


def test_the_logs_and_audit_pages_read_a_fixed_number_of_queries_whatever_the_rows(world):
    auditor = world.member(Role.AUDITOR)
    console = console_as(auditor)

    def count(url: str, params: dict) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert console.get(url, params).status_code == 200
        return len(queries)

    pages = (("/usage/logs/", {}), ("/usage/logs/", {"gateway": world.gateway.pk}), ("/audit/", {}))
    few = [count(url, params) for url, params in pages]
    for n in range(30):
        UsageEventFactory(api_key=world.key, created_at=T0 + timedelta(seconds=n))
        AuditEvent.objects.create(resource_group=world.group, action="gateway.update", target_type="gateway")
    many = [count(url, params) for url, params in pages]

    assert many == few
    # Session, user, the user's roles (once), the page, then the gateways of the filter (logs) or
    # the groups and the kinds of object of the filters (audit trail).
    assert many == [5, 5, 6]


# The rule itself ----------------------------------------------------------------------------

READ_MODULES = ("usage/api.py", "usage/views.py", "usage/dashboard.py", "usage/selectors.py")


def test_every_model_read_of_the_usage_api_views_dashboard_and_selectors_goes_through_restrict():
    """`Model.objects` is followed by `.restrict(user, action)`, or the line (or the one above it)
    says why not with `# policy:` (a trusted caller, rows of an object already restricted)."""
    root = Path(__file__).resolve().parents[2]
    unexplained = []
    for module in READ_MODULES:
        lines = (root / module).read_text().splitlines()
        for number, line in enumerate(lines):
            for match in re.finditer(r"\b\w+\.objects\b(\.\w+)?", line):
                explained = "# policy:" in line or (number > 0 and "# policy:" in lines[number - 1])
                if match.group(1) != ".restrict" and not explained:
                    unexplained.append(f"{module}:{number + 1}: {line.strip()}")

    assert unexplained == []


def test_the_gateway_tab_selectors_given_a_viewer_read_no_usage_and_given_a_developer_read_it(world):
    from usage.selectors import tokens_used, usage_events_latest, usage_summary

    viewer, developer = world.member(Role.VIEWER), world.member(Role.DEVELOPER)
    window = {"gateway": world.gateway, "since": T0 - timedelta(days=1)}

    assert list(usage_events_latest(gateway=world.gateway, user=viewer)) == []
    assert tokens_used(**window, user=viewer) == 0
    assert usage_summary(**window, until=T0 + timedelta(days=1), user=viewer).totals.requests == 0
    assert [e.request_id for e in usage_events_latest(gateway=world.gateway, user=developer)] == ["req_mine"]
    assert tokens_used(**window, user=developer) == world.event.total_tokens
    assert usage_summary(**window, until=T0 + timedelta(days=1), user=developer).totals.requests == 1
