"""Request guards: the management API's body limit and the console's sign-in lockout page."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render


class ApiBodySizeMiddleware:
    """Refuse a management API request whose body is larger than `AIGW_API_MAX_BODY_BYTES`
    (default 1 MiB) with 413 `{"detail": …}` (DRF's error shape), before anything reads it.

    The size comes from `Content-Length`; a request without it (chunked) is read up to the
    limit plus one byte, so it cannot be larger either. DRF reads JSON bodies from the stream,
    which Django's `DATA_UPLOAD_MAX_MEMORY_SIZE` does not cover.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/api/") and request.method not in ("GET", "HEAD", "OPTIONS"):
            limit = settings.AIGW_API_MAX_BODY_BYTES
            length = request.META.get("CONTENT_LENGTH") or ""
            too_big = False
            if length.isdigit():
                too_big = int(length) > limit
            elif request.META.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
                too_big = len(request.read(limit + 1)) > limit
            if too_big:
                return JsonResponse(
                    {"detail": f"The request body is larger than {limit} bytes."},
                    status=413,
                )
        return self.get_response(request)


def sign_in_locked_out(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict | None = None
) -> HttpResponse:
    """The sign-in page, answered 429, when django-axes has locked this username and address
    (its `AXES_LOCKOUT_CALLABLE`): the form again, with the username kept and a message saying
    for how long (`AIGW_LOGIN_LOCKOUT_MINUTES`) and who can unlock it sooner."""
    from django.contrib.auth.forms import AuthenticationForm

    username = (credentials or {}).get("username") or request.POST.get("username", "")
    form = AuthenticationForm(request, initial={"username": username})
    context = {
        "form": form,
        "username": username,
        "next": request.POST.get("next") or request.GET.get("next", ""),
        "locked_out_minutes": settings.AIGW_LOGIN_LOCKOUT_MINUTES,
    }
    return render(request, "registration/login.html", context, status=429)
