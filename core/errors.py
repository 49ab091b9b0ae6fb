"""The one error family of aigw's services, and the one place each surface turns it into a reply.

Every rule that guards a write lives in the service that does the write and raises one of:

| exception | HTTP | when |
| --- | --- | --- |
| `ValidationFailed` | 400 | a value is wrong (`fields` names the service's field) |
| `PermissionDenied` | 403 | the user's role (or not being a platform admin) forbids it |
| `NotFound` | 404 | the object does not exist, or the user may not see it |
| `Conflict` | 409 | the change would break a rule of the current state (the last owner, a used model) |

The management API turns them into DRF responses with `core.api_errors.api_exception_handler`
(REST_FRAMEWORK's `EXCEPTION_HANDLER`): `{"<field>": ["<message>"]}` for a 400, `{"detail": "<message>"}` for the
others, and Vercel's `{"error": "<sentence>", "field": …}` for views that set
`error_shape = "vercel"` (the `/api/v1/quotas` API, SPEC §5). The console turns them into form
errors, a 403 page or a 404 page with `add_service_errors`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from django import forms
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404

NON_FIELD = "__all__"


class ApplicationError(Exception):
    """A rule of aigw refused a change or a read.

    `message` is one sentence, or a mapping `{field: message or [messages]}` naming the service's
    fields (`__all__` for the whole request). `field` names one field for a single message.
    """

    status_code = 400
    code = "invalid"

    def __init__(self, message: str | Mapping[str, str | Sequence[str]], *, field: str | None = None) -> None:
        if isinstance(message, Mapping):
            self.fields: dict[str, list[str]] = {
                name: [value] if isinstance(value, str) else [str(v) for v in value] for name, value in message.items()
            }
        else:
            self.fields = {field or NON_FIELD: [str(message)]}
        self.message = next(iter(self.fields.values()))[0]
        super().__init__(self.message)

    @property
    def messages(self) -> list[str]:
        """Every message, in field order."""
        return [message for messages in self.fields.values() for message in messages]


class ValidationFailed(ApplicationError):
    """400: a value is wrong."""


class PermissionDenied(ApplicationError, DjangoPermissionDenied):
    """403: the user's role does not allow this. Also Django's `PermissionDenied`, so a console
    view that lets it through renders the 403 page."""

    status_code = 403
    code = "permission_denied"


class NotFound(ApplicationError, Http404):
    """404: no such object, or one the user may not see (never a 403 that confirms it exists).
    Also Django's `Http404`, so a console view that lets it through renders the 404 page."""

    status_code = 404
    code = "not_found"


class Conflict(ApplicationError):
    """409: the change would break a rule of the current state."""

    status_code = 409
    code = "conflict"


def from_django(error: DjangoValidationError) -> ValidationFailed:
    """A `ValidationFailed` with the fields of a Django `ValidationError` (e.g. from `full_clean`)."""
    if hasattr(error, "error_dict"):
        return ValidationFailed(error.message_dict)
    return ValidationFailed({NON_FIELD: error.messages})


# The console --------------------------------------------------------------------------------


def add_service_errors(
    form: forms.Form,
    error: ApplicationError | DjangoValidationError,
    fields: Mapping[str, str] | None = None,
    default: str | None = None,
) -> None:
    """Show a service's error on a console form: each message under the form field it names
    (`fields` maps a service's name to the form's), else under `default` (None: above the form).

    Raises:
        django.core.exceptions.PermissionDenied: for `PermissionDenied` (the 403 page).
        django.http.Http404: for `NotFound` (the 404 page).
    """
    if isinstance(error, PermissionDenied):
        raise DjangoPermissionDenied(error.message)
    if isinstance(error, NotFound):
        raise Http404(error.message)
    if isinstance(error, DjangoValidationError):
        error = from_django(error)
    for name, messages in error.fields.items():
        target = (fields or {}).get(name, name)
        form.add_error(target if target in form.fields else default, messages)
