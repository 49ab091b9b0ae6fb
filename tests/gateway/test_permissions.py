"""The one policy (core.permissions): the role table of SPEC §1, platform admins, restrict()
on every group-owned model, and roles resolved once per request."""

from __future__ import annotations

import pytest

from core.permissions import Action, Role, can, forget_roles, policy_for
from gateway.models import Gateway, Model, Provider, ResourceGroup
from gateway.services import membership_set
from gateway.setup import gateway_create
from keys.models import ApiKey
from quotas.models import TokenQuota
from quotas.services import token_quota_set
from tests.factories import MembershipFactory, ResourceGroupFactory, UsageEventFactory, UserFactory
from tests.support.people import member_of
from usage.models import UsageEvent

pytestmark = pytest.mark.django_db

EXPECTED = {
    Role.OWNER: set(Action) - {Action.MANAGE_PROVIDERS},
    Role.ADMIN: {
        Action.VIEW_SETTINGS,
        Action.VIEW_USAGE,
        Action.VIEW_AUDIT,
        Action.VIEW_BODIES,
        Action.MANAGE_GATEWAYS,
        Action.CREATE_KEYS,
    },
    Role.DEVELOPER: {Action.VIEW_SETTINGS, Action.VIEW_USAGE, Action.CREATE_KEYS},
    Role.AUDITOR: {Action.VIEW_SETTINGS, Action.VIEW_USAGE, Action.VIEW_AUDIT, Action.VIEW_BODIES},
    Role.VIEWER: {Action.VIEW_SETTINGS},
}


@pytest.mark.parametrize("role", list(Role))
def test_each_role_may_do_exactly_what_spec_section_1_says(role):
    group = ResourceGroupFactory()
    user = member_of(group, role)

    allowed = {action for action in Action if action != Action.MANAGE_PROVIDERS and can(user, action, group)}

    assert allowed == EXPECTED[role]
    assert not can(user, Action.MANAGE_PROVIDERS)


def test_a_non_member_may_do_nothing_in_a_group_and_sees_none_of_its_objects():
    group = ResourceGroupFactory()
    gateway, api_key, _ = gateway_create(resource_group=group, name="theirs", token_quota=10)
    UsageEventFactory(api_key=api_key)
    stranger = UserFactory()

    assert not any(can(stranger, action, group) for action in Action if action != Action.MANAGE_PROVIDERS)
    for model in (ResourceGroup, Gateway, ApiKey, TokenQuota, UsageEvent):
        assert not model.objects.restrict(stranger, Action.VIEW_SETTINGS).exists(), model


def test_a_platform_admin_manages_the_catalog_and_reads_every_group_without_changing_it():
    group = ResourceGroupFactory()
    _, api_key, _ = gateway_create(resource_group=group, name="theirs")
    UsageEventFactory(api_key=api_key)
    staff = UserFactory(is_staff=True)

    assert can(staff, Action.MANAGE_PROVIDERS)
    assert Provider.objects.restrict(staff, Action.MANAGE_PROVIDERS).exists()
    assert UsageEvent.objects.restrict(staff, Action.VIEW_USAGE).count() == 1
    assert not can(staff, Action.MANAGE_GATEWAYS, group) and not can(staff, Action.MANAGE_MEMBERS, group)


def test_the_catalog_is_read_by_every_signed_in_user_and_written_by_platform_admins_only():
    owner = MembershipFactory(role=Role.OWNER).user
    nobody = UserFactory()

    assert Model.objects.restrict(nobody, Action.VIEW_SETTINGS).count() == Model.objects.count() >= 2
    assert not Model.objects.restrict(owner, Action.MANAGE_PROVIDERS).exists()
    assert not Provider.objects.restrict(owner, Action.MANAGE_PROVIDERS).exists()


def test_a_viewer_reads_settings_but_no_usage():
    group = ResourceGroupFactory()
    _, api_key, _ = gateway_create(resource_group=group, name="g")
    token_quota_set(api_key=api_key, limit_tokens=100)
    UsageEventFactory(api_key=api_key)
    viewer = member_of(group, Role.VIEWER)

    assert ApiKey.objects.restrict(viewer, Action.VIEW_SETTINGS).get() == api_key
    assert TokenQuota.objects.restrict(viewer, Action.VIEW_SETTINGS).count() == 1
    assert not UsageEvent.objects.restrict(viewer, Action.VIEW_USAGE).exists()


def test_roles_are_read_once_however_many_checks_a_request_makes(django_assert_num_queries):
    groups = [ResourceGroupFactory() for _ in range(5)]
    user = UserFactory()
    for group in groups:
        MembershipFactory(user=user, resource_group=group, role=Role.DEVELOPER)
    forget_roles(user)

    with django_assert_num_queries(1):
        answers = [can(user, action, group) for group in groups for action in Action if action != "manage_providers"]
        policy_for(user).group_ids(Action.VIEW_USAGE)

    assert answers.count(True) == 5 * 3


def test_a_membership_change_is_seen_by_the_next_check_of_the_same_user():
    group = ResourceGroupFactory()
    user = member_of(group, Role.VIEWER)
    assert not can(user, Action.MANAGE_GATEWAYS, group)

    MembershipFactory(resource_group=group, role=Role.OWNER)
    membership_set(resource_group=group, user=user, role=Role.ADMIN)

    assert can(user, Action.MANAGE_GATEWAYS, group)


def test_anonymous_users_see_nothing():
    from django.contrib.auth.models import AnonymousUser

    assert not Model.objects.restrict(AnonymousUser(), Action.VIEW_SETTINGS).exists()
    assert not can(AnonymousUser(), Action.MANAGE_PROVIDERS)


def test_the_navigation_offers_a_viewer_no_usage_logs_or_audit_links(client):
    group = ResourceGroupFactory()
    viewer = member_of(group, Role.VIEWER)
    auditor = member_of(group, Role.AUDITOR)

    client.force_login(viewer)
    viewer_page = client.get("/gateways/").content.decode()
    client.force_login(auditor)
    auditor_page = client.get("/gateways/").content.decode()

    assert 'href="/usage/"' not in viewer_page and 'href="/audit/"' not in viewer_page
    assert 'href="/usage/"' in auditor_page and 'href="/audit/"' in auditor_page
