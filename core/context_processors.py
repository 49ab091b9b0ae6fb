"""Template context shared by every console page."""

from __future__ import annotations

from django.http import HttpRequest

from core.permissions import Action, is_platform_admin, policy_for


def permissions(request: HttpRequest) -> dict[str, bool]:
    """What the top navigation may offer the signed-in user, from the one policy: `can_read_usage`
    (the Usage and Logs pages), `can_read_audit` (the Audit trail) and `is_platform_admin`.
    Reuses the request's resolved roles, so it costs at most one query per request."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"can_read_usage": False, "can_read_audit": False, "is_platform_admin": False}
    policy = policy_for(user)
    return {
        "can_read_usage": policy.can_anywhere(Action.VIEW_USAGE),
        "can_read_audit": policy.can_anywhere(Action.VIEW_AUDIT),
        "is_platform_admin": is_platform_admin(user),
    }
