"""Console pages for the signed-in user's personal API tokens (management API credentials)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from keys.forms import ApiTokenForm
from keys.selectors import api_tokens_of
from keys.services import api_token_create, api_token_revoke


def _page(request: HttpRequest, form: ApiTokenForm, secret: str | None = None, status: int = 200) -> HttpResponse:
    tokens = api_tokens_of(request.user)
    context = {"form": form, "tokens": tokens, "secret": secret, "now": timezone.now()}
    return render(request, "keys/api_tokens.html", context, status=status)


@login_required
def api_token_list(request: HttpRequest) -> HttpResponse:
    """`GET` the user's tokens with the create form; `POST` creates one and shows it once.

    The console posts with htmx and swaps the answer in place, so the page's URL stays a GET:
    reloading it shows the token list, never the secret again and never a second token."""
    if request.method == "POST":
        form = ApiTokenForm(request.POST)
        if not form.is_valid():
            # htmx swaps only 2xx answers; a plain form post gets the 400 it deserves.
            return _page(request, form, status=200 if getattr(request, "htmx", False) else 400)
        _, secret = api_token_create(
            user=request.user, name=form.cleaned_data["name"], expires_at=form.cleaned_data["expires_at"]
        )
        return _page(request, ApiTokenForm(), secret=secret)
    return _page(request, ApiTokenForm())


@login_required
@require_POST
def api_token_revoke_view(request: HttpRequest, pk: int) -> HttpResponse:
    """Revoke one of the user's own tokens (another user's token is a 404)."""
    token = get_object_or_404(api_tokens_of(request.user), pk=pk)
    api_token_revoke(token=token)
    messages.success(request, f"Token “{token.name}” is revoked.")
    return redirect("api-token-list")
