"""Error pages for requests that reach no view: the management API answers in DRF's JSON style
(`{"detail": ...}`) and the data plane in OpenAI's (`{"error": {...}}`), so a client parsing JSON
never meets an HTML page; console paths get Django's pages."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults


def _openai_error(message: str, code: str, status: int) -> JsonResponse:
    return JsonResponse(
        {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}, status=status
    )


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """404 for a URL no route matches (e.g. `/api/v1/api-keys/-1/revoke`): JSON on `/api/`
    and `/v1/`, the console's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    if request.path.startswith("/v1/"):
        return _openai_error(f"Unknown URL {request.path}.", "not_found", 404)
    return defaults.page_not_found(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    """403 for a role that may not act: JSON on `/api/` and `/v1/`, the console's page elsewhere
    (which tells the user that an owner can change their role)."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "You do not have permission to perform this action."}, status=403)
    if request.path.startswith("/v1/"):
        return _openai_error("This API key may not do this.", "permission_denied", 403)
    return defaults.permission_denied(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """500 for an unhandled exception: JSON on `/api/` and `/v1/`, the console's page elsewhere.
    The message never carries the exception's text (it may hold secrets)."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "A server error occurred."}, status=500)
    if request.path.startswith("/v1/"):
        return _openai_error("The gateway failed to handle the request.", "server_error", 500)
    return defaults.server_error(request)
