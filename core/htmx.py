"""What the console's views share for htmx (django-htmx's `request.htmx`) and for forms.

A page and its fragments are one template, rendered as `page.html#fragment` when `is_partial`;
`save_form` is the one way a console form calls its service and shows what the service refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from django.db import transaction
from django.forms import Form
from django.http import HttpRequest

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
