"""`manage.py demo`: seed a demo admin, resource group, gateway and API key on the mock provider,
and print how to sign in plus ready `curl` and `openai` snippets."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from gateway.models import Gateway, Membership, ResourceGroup, Role
from gateway.services import gateway_create, mock_provider_ensure
from keys.models import ApiKeyStatus
from keys.services import api_key_create, api_key_revoke

DEMO_USER = "admin"
DEMO_GROUP = "Demo"
DEMO_GATEWAY = "demo-gateway"


class Command(BaseCommand):
    help = "Seed the demo (admin user, resource group, gateway, API key on the mock provider)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")

    @transaction.atomic
    def handle(self, *args, base_url: str, **options) -> None:
        mock_provider_ensure()
        password = secrets.token_urlsafe(12)
        user, _ = get_user_model().objects.get_or_create(username=DEMO_USER, defaults={"email": "admin@example.com"})
        user.set_password(password)
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
        v1 = f"{base_url.rstrip('/')}/v1"
        self.stdout.write(
            f"""
aigw demo is ready.

Console:   {base_url}/   (sign in as {DEMO_USER} / {password})
Gateway:   {gateway.name} in resource group {group.name}, token quota 1,000,000 tokens
API key:   {secret}

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
