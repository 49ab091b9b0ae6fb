"""`manage.py create_gateway NAME [--group G] [--token-quota N] [--expires-in 7d|30d|60d|90d|never]`

Creates an enabled gateway and its first API key; the key is printed alone on the last line,
so that scripts can take it with `| tail -n 1`.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from gateway.models import Gateway, ResourceGroup
from gateway.services import mock_provider_ensure, resource_group_create
from gateway.setup import gateway_create
from keys.expiry import EXPIRES_IN_CHOICES, expires_at_for


class Command(BaseCommand):
    help = "Create an AI gateway and print its new API key on the last line."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name")
        parser.add_argument("--group", default="default", help="Resource group (created if missing).")
        parser.add_argument("--token-quota", type=int, default=None, help="Token quota; omit for unlimited.")
        parser.add_argument("--expires-in", default="never", choices=list(EXPIRES_IN_CHOICES))

    def handle(self, *args, name: str, group: str, token_quota: int | None, expires_in: str, **options) -> None:
        if token_quota is not None and token_quota <= 0:
            raise CommandError("--token-quota must be a positive number of tokens")
        mock_provider_ensure()
        resource_group = ResourceGroup.objects.filter(name=group).first() or resource_group_create(name=group)
        if Gateway.objects.filter(resource_group=resource_group, name=name, deleted_at__isnull=True).exists():
            raise CommandError(f"a gateway named {name!r} already exists in resource group {group!r}")
        gateway, api_key, secret = gateway_create(
            resource_group=resource_group,
            name=name,
            token_quota=token_quota,
            expires_at=expires_at_for(expires_in),
        )
        expiry = api_key.expires_at.isoformat() if api_key.expires_at else "never"
        quota = f"{token_quota:,} tokens" if token_quota else "unlimited"
        self.stdout.write(
            f"Created gateway {gateway.name!r} (id {gateway.pk}) in {resource_group.name!r}; "
            f"token quota {quota}; key expires {expiry}. The API key is shown once:"
        )
        self.stdout.write(secret)
