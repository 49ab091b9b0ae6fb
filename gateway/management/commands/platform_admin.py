"""`manage.py platform_admin USERNAME [--revoke]`

Makes an existing user a platform admin (Django's `is_staff`): the only users who create, edit,
test or delete providers and the model catalog (SPEC §1). `--revoke` takes it back. The change is
in the audit trail. The very first platform admin can also be made with `manage.py createsuperuser`.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from core.errors import ApplicationError
from gateway.services import platform_admin_set


class Command(BaseCommand):
    help = "Make an existing user a platform admin (is_staff), or take it back with --revoke."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--revoke", action="store_true", help="Take the platform admin right back.")

    def handle(self, *args, username: str, revoke: bool = False, **options) -> None:
        try:
            user = platform_admin_set(username=username, is_platform_admin=not revoke)
        except ApplicationError as error:
            raise CommandError(error.message) from error
        state = "is no longer" if revoke else "is now"
        self.stdout.write(f"{user.get_username()} {state} a platform admin.")
