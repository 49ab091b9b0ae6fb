"""`manage.py create_api_token USERNAME [--name NAME]`: a personal API token for the management
API, printed alone on the last line (shown once)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from keys.services import api_token_create


class Command(BaseCommand):
    help = "Create a personal API token for USERNAME and print it on the last line."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="cli", help="A name to recognise the token by.")

    def handle(self, *args, username: str, name: str, **options) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        token, secret = api_token_create(user=user, name=name)
        self.stdout.write(f"Created API token {token.name!r} ({token.prefix}…) for {username}. It is shown once:")
        self.stdout.write(secret)
