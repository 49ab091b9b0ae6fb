"""`manage.py demo`: seed a demo admin, resource group, gateway and API key on the mock provider,
and print how to sign in plus ready `curl` and `openai` snippets. The first run also seeds four
weeks of usage history on three more keys (one over its monthly spend budget), so the
dashboards have something to show; `--no-history` skips it."""

from __future__ import annotations

import secrets
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from gateway.models import Gateway, Membership, ResourceGroup, Role
from gateway.services import mock_provider_ensure
from gateway.setup import gateway_create
from keys.models import ApiKey, ApiKeyStatus
from keys.services import api_key_create, api_key_revoke
from quotas.models import RefreshPeriod, SpendBudget
from quotas.services import spend_budget_create
from usage.demo_history import seed_history
from usage.models import UsageEvent

DEMO_USER = "admin"
DEMO_GROUP = "Demo"
DEMO_GATEWAY = "demo-gateway"


class Command(BaseCommand):
    help = "Seed the demo (admin user, resource group, gateway, API key on the mock provider)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")
        parser.add_argument("--no-history", action="store_true", help="Do not seed weeks of usage history.")

    @transaction.atomic
    def handle(self, *args, base_url: str, no_history: bool = False, **options) -> None:
        mock_provider_ensure()
        password = secrets.token_urlsafe(12)
        user, _ = get_user_model().objects.get_or_create(username=DEMO_USER, defaults={"email": "admin@example.com"})
        user.set_password(password)
        user.is_staff = True  # the demo's admin is a platform admin: it manages providers and models
        user.save()
        group, _ = ResourceGroup.objects.get_or_create(name=DEMO_GROUP)
        Membership.objects.update_or_create(user=user, resource_group=group, defaults={"role": Role.OWNER})
        gateway = Gateway.objects.filter(resource_group=group, name=DEMO_GATEWAY, deleted_at__isnull=True).first()
        if gateway is None:
            gateway, _, secret = gateway_create(
                resource_group=group,
                name=DEMO_GATEWAY,
                created_by=user,
                token_quota=1_000_000,
                key_name="demo key",
            )
        else:
            # Secrets are shown once, so a re-run replaces the demo key with a new one.
            for old in gateway.api_keys.exclude(status=ApiKeyStatus.REVOKED):
                api_key_revoke(api_key=old)
            _, secret = api_key_create(gateway=gateway, name="demo key", created_by=user)
        history = "" if no_history else self._history(group, user)
        v1 = f"{base_url.rstrip('/')}/v1"
        self.stdout.write(
            f"""
aigw demo is ready.

Console:   {base_url}/   (sign in as {DEMO_USER} / {password})
Gateway:   {gateway.name} in resource group {group.name}, token quota 1,000,000 tokens
API key:   {secret}
{history}
curl:
  curl {v1}/chat/completions \\
    -H "Authorization: Bearer {secret}" -H "Content-Type: application/json" \\
    -d '{{"model": "mock/echo", "messages": [{{"role": "user", "content": "Hello, gateway!"}}]}}'

openai (Python):
  from openai import OpenAI
  client = OpenAI(base_url="{v1}", api_key="{secret}")
  reply = client.chat.completions.create(model="mock/echo", messages=[{{"role": "user", "content": "Hello"}}])
  print(reply.choices[0].message.content, reply.usage)
"""
        )

    def _history(self, group: ResourceGroup, user) -> str:
        """Seed the usage history once, on three gateways of its own (the demo gateway's token
        quota stays untouched), unless the group has usage already."""
        if UsageEvent.objects.filter(resource_group=group).exists():
            return ""
        keys = {}
        for gateway_name, key_name, budget in (
            ("support", "support-bot", Decimal(10)),
            ("batch-jobs", "nightly-batch", Decimal(25)),
            ("research", "eval-harness", None),
        ):
            gateway = Gateway.objects.filter(resource_group=group, name=gateway_name, deleted_at__isnull=True).first()
            if gateway is None:
                gateway, _, _ = gateway_create(
                    resource_group=group, name=gateway_name, created_by=user, key_name=key_name
                )
            api_key = (
                ApiKey.objects.filter(gateway=gateway, name=key_name).first()
                or api_key_create(gateway=gateway, name=key_name, created_by=user)[0]
            )
            if budget is not None and not SpendBudget.objects.filter(api_key=api_key).exists():
                spend_budget_create(api_key=api_key, limit_usd=budget, refresh_period=RefreshPeriod.MONTHLY)
            keys[key_name] = api_key
        count = seed_history(keys=keys, now=timezone.now())
        return f"History:   {count:,} requests over 28 days on 3 more gateways (see Usage in the console)\n"
