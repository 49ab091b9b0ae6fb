"""What the console's views share for htmx (django-htmx's `request.htmx`), for forms and for
dialogs.

A page and its fragments are one template, rendered as `page.html#fragment` when `is_partial`;
`save_form` is the one way a console form calls its service and shows what the service refused.

Every dialog of the console works twice: as a plain page without JavaScript (GET its form, POST,
redirect with a Django message) and as a dialog with htmx (GET its body; POST answers the body
again with inline errors, or closes the dialog with a toast and refreshes the page region,
`aigw:refresh`). `render_dialog`, `close_dialog`, `render_secret_once` and `announce_change` are
those answers; `safe_next_url` is where a dialog goes back to.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from django.contrib import messages
from django.db import transaction
from django.forms import Form
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django_htmx.http import trigger_client_event

from core.errors import ApplicationError, add_service_errors


def is_partial(request: HttpRequest) -> bool:
    """True for an htmx request that swaps part of a page (not a history restore, which needs
    the whole page)."""
    htmx = getattr(request, "htmx", None)  # django_htmx.middleware.HtmxDetails
    return htmx is not None and bool(htmx) and not htmx.history_restore_request


def save_form(form: Form, write: Callable[[dict[str, Any]], Any], fields: Mapping[str, str] | None = None) -> bool:
    """Validate `form` and call `write(cleaned_data)` atomically; True when it was saved.

    What the service refuses (`core.errors.ApplicationError`) goes back to the form with
    `add_service_errors` (`fields` maps the service's field names to the form's); a 403 or 404
    from the service becomes the 403 or 404 page."""
    if not form.is_valid():
        return False
    try:
        with transaction.atomic():
            write(form.cleaned_data)
    except ApplicationError as error:
        add_service_errors(form, error, fields)
        return False
    return True


def render_dialog(request: HttpRequest, template: str, context: dict) -> HttpResponse:
    """A dialog: its body for htmx (`<template>#body`), else its whole page (no JavaScript).

    `context` gets `standalone` (True for the page). The answer varies on `HX-Request`."""
    partial = is_partial(request)
    response = render(request, template + ("#body" if partial else ""), {**context, "standalone": not partial})
    patch_vary_headers(response, ["HX-Request"])
    return response


def close_dialog(request: HttpRequest, message: str, dialog: str, next_url: str) -> HttpResponse:
    """The answer after a successful change in a dialog: htmx gets an empty body that closes the
    dialog whose element id is `dialog`, shows `message` as a toast and refreshes the page region
    (`announce_change`); other clients are redirected to `next_url` with `message` as a Django
    success message."""
    if not is_partial(request):
        messages.success(request, message)
        return redirect(next_url)
    response = HttpResponse("")
    announce_change(response, message)
    trigger_client_event(response, "aigw:close-dialog", {"id": dialog}, after="settle")
    return response


def announce_change(response: HttpResponse, message: str) -> None:
    """Tell the htmx page that something changed: a toast with `message` (`aigw:toast`) and a
    refresh of the page region (`aigw:refresh`), both after the swap settles."""
    trigger_client_event(response, "aigw:toast", {"message": message}, after="settle")
    trigger_client_event(response, "aigw:refresh", {}, after="settle")


def render_secret_once(request: HttpRequest, template: str, context: dict, message: str) -> HttpResponse:
    """The dialog's answer holding a secret shown once (`render_dialog`): never cached, never
    stored (`Cache-Control: no-store`), never shown again (a GET of the same URL shows the
    form). htmx also gets the toast and refresh of `announce_change`."""
    response = render_dialog(request, template, context)
    response["Cache-Control"] = "no-store"
    if is_partial(request):
        announce_change(response, message)
    return response


def safe_next_url(request: HttpRequest, default: str) -> str:
    """Where to go back to after a dialog: its `next` parameter (POST, else GET) when it is a
    URL of this site, else `default` (never another host: no open redirect)."""
    wanted = request.POST.get("next") or request.GET.get("next") or ""
    if wanted and url_has_allowed_host_and_scheme(wanted, allowed_hosts={request.get_host()}):
        return wanted
    return default
