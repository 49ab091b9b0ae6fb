"""DRF authentication with personal API tokens: `Authorization: Bearer aigwp_…`."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from keys.models import ApiToken
from keys.services import api_token_mark_used
from keys.tokens import API_TOKEN_PREFIX, hash_secret


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """Authenticates a personal API token; other Bearer values are left to other classes.

    Raises:
        rest_framework.exceptions.AuthenticationFailed: for an unknown, revoked or expired
            token, or one whose user is inactive (401 with `WWW-Authenticate: Bearer`).
    """

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        scheme, _, secret = header.partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret.startswith(API_TOKEN_PREFIX):
            return None
        token = ApiToken.objects.select_related("user").filter(hashed_secret=hash_secret(secret)).first()
        now = timezone.now()
        if token is None or token.revoked_at is not None or (token.expires_at and token.expires_at <= now):
            raise exceptions.AuthenticationFailed("Invalid, revoked or expired API token.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("The user of this API token is inactive.")
        api_token_mark_used(token=token, now=now)
        return token.user, token

    def authenticate_header(self, request) -> str:
        return self.keyword


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """The OpenAPI security scheme of personal API tokens (for drf-spectacular)."""

    target_class = "keys.authentication.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "A personal API token, `aigwp_…`."}
