"""`manage.py create_gateway` and `manage.py demo`, as scripts and people use them."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command

from core.models import AuditEvent
from core.permissions import Action, can
from gateway.models import Gateway
from keys.models import ApiKey, ApiKeyStatus
from keys.tokens import hash_secret
from quotas.models import TokenQuota
from tests.factories import UserFactory


def run(*args) -> list[str]:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().strip().splitlines()


@pytest.mark.django_db
def test_create_gateway_prints_the_new_key_alone_on_its_last_line():
    with time_machine.travel(datetime(2026, 11, 22, 10, 0, tzinfo=UTC), tick=False):
        lines = run(
            "create_gateway",
            "billing-bot",
            "--group",
            "finance",
            "--token-quota",
            "5000",
            "--expires-in",
            "7d",
        )

    secret = lines[-1]
    api_key = ApiKey.objects.get(hashed_secret=hash_secret(secret))
    assert api_key.gateway.name == "billing-bot"
    assert api_key.gateway.resource_group.name == "finance"
    assert api_key.expires_at == datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
    assert TokenQuota.objects.get(gateway=api_key.gateway).limit_tokens == 5000


@pytest.mark.django_db
def test_create_gateway_refuses_a_duplicate_name_or_a_non_positive_quota():
    run("create_gateway", "bot")
    with pytest.raises(CommandError, match="already exists"):
        run("create_gateway", "bot")
    with pytest.raises(CommandError, match="positive"):
        run("create_gateway", "other", "--token-quota", "0")
    assert Gateway.objects.count() == 1


@pytest.mark.django_db
def test_demo_prints_how_to_sign_in_and_a_working_key_and_a_rerun_replaces_the_key():
    first = "\n".join(run("demo"))
    assert "sign in as admin / " in first
    assert "from openai import OpenAI" in first and "curl http://127.0.0.1:8000/v1/chat/completions" in first
    first_secret = next(line.split()[-1] for line in first.splitlines() if line.startswith("API key:"))

    second = "\n".join(run("demo"))
    second_secret = next(line.split()[-1] for line in second.splitlines() if line.startswith("API key:"))

    assert ApiKey.objects.get(hashed_secret=hash_secret(first_secret)).status == ApiKeyStatus.REVOKED
    assert ApiKey.objects.get(hashed_secret=hash_secret(second_secret)).status == ApiKeyStatus.ACTIVE
    assert Gateway.objects.filter(name="demo-gateway").count() == 1
    assert (datetime.now(UTC) - Gateway.objects.get(name="demo-gateway").created_at) < timedelta(minutes=5)


@pytest.mark.django_db
def test_demo_seeds_weeks_of_history_once_with_a_key_over_its_budget():
    from django.db.models import Sum

    from usage.models import UsageEvent, UsageRollup, UsageRollupDirtyHour

    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    with time_machine.travel(now, tick=False):
        output = "\n".join(run("demo"))
    events = UsageEvent.objects.all()
    count = events.count()

    assert f"History:   {count:,} requests over 28 days" in output
    assert count > 1000
    assert set(events.values_list("api_key_name", flat=True)) == {"support-bot", "nightly-batch", "eval-harness"}
    assert events.order_by("created_at").first().created_at >= now - timedelta(days=28)
    assert not events.filter(gateway__name="demo-gateway").exists()  # its token quota stays untouched
    assert events.filter(status_code__gte=400).exists()
    batch = ApiKey.objects.get(name="nightly-batch")
    this_month = events.filter(api_key=batch, created_at__gte=datetime(2026, 11, 1, tzinfo=UTC))
    assert this_month.aggregate(s=Sum("cost_usd"))["s"] > batch.spend_budget.limit_usd
    assert not UsageRollupDirtyHour.objects.exists()
    assert UsageRollup.objects.aggregate(n=Sum("requests"))["n"] == count

    with time_machine.travel(now + timedelta(hours=1), tick=False):
        rerun = "\n".join(run("demo"))
    assert "History:" not in rerun and UsageEvent.objects.count() == count


@pytest.mark.django_db
def test_platform_admin_makes_a_user_manage_providers_and_revoke_takes_it_back():
    ana = UserFactory(username="ana")
    out = StringIO()
    call_command("platform_admin", "ana", stdout=out)
    ana.refresh_from_db()
    assert "ana is now a platform admin" in out.getvalue() and can(ana, Action.MANAGE_PROVIDERS)

    call_command("platform_admin", "ana", "--revoke", stdout=StringIO())
    ana.refresh_from_db()
    assert not ana.is_staff and not can(ana, Action.MANAGE_PROVIDERS)
    assert list(AuditEvent.objects.filter(target_type="user").values_list("action", flat=True).order_by("id")) == [
        "platform_admin.grant",
        "platform_admin.revoke",
    ]
    with pytest.raises(CommandError, match="No active user is named 'bob'"):
        call_command("platform_admin", "bob")
