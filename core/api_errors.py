"""The one DRF exception handler of the management API (REST_FRAMEWORK's `EXCEPTION_HANDLER`).

It renders the services' `ApplicationError` family (`core.errors`) and DRF's own exceptions:
`{"<field>": ["<message>"]}` for a 400, `{"detail": "<message>"}` otherwise, and Vercel's
`{"error": "<sentence>", "field": …}` for views with `error_shape = "vercel"` (SPEC §5).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

from core.errors import NON_FIELD, ApplicationError, ValidationFailed, from_django


def _drf_exception(error: ApplicationError, field_names: Mapping[str, str]) -> exceptions.APIException:
    if isinstance(error, ValidationFailed):
        detail = {
            api_settings.NON_FIELD_ERRORS_KEY if name == NON_FIELD else field_names.get(name, name): messages
            for name, messages in error.fields.items()
        }
        return exceptions.ValidationError(detail)
    exception = exceptions.APIException(error.message, code=error.code)
    exception.status_code = error.status_code
    return exception


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """REST_FRAMEWORK's `EXCEPTION_HANDLER`: DRF's handler, after turning an `ApplicationError`
    (or a Django `ValidationError` a model's `full_clean` raised) into DRF's exception.

    A view's `service_fields` (`{service field: API field}`) renames the fields of a 400, so the
    error names what the client sent. A view with `error_shape = "vercel"` gets Vercel's shape.
    """
    view = context.get("view")
    if isinstance(exc, DjangoValidationError):
        exc = from_django(exc)
    if isinstance(exc, ApplicationError):
        exc = _drf_exception(exc, getattr(view, "service_fields", {}))
    response = drf_exception_handler(exc, context)
    if response is not None and getattr(view, "error_shape", None) == "vercel":
        response.data = vercel_error_body(exc, response)
    return response


def _sentence(field: str, message: str) -> str:
    if message.startswith("This field "):
        return field + message[len("This field") :]
    return f"{field} {message[:1].lower()}{message[1:]}"


def _first_error(detail: Any) -> tuple[str | None, str]:
    """The first (field, message) of a DRF ValidationError's detail; fields in declared order."""
    if isinstance(detail, dict):
        field, messages = next(iter(detail.items()))
        _, message = _first_error(messages)
        if field == api_settings.NON_FIELD_ERRORS_KEY:
            return None, message
        return field, _sentence(field, message)
    if isinstance(detail, list):
        return _first_error(detail[0]) if detail else (None, "Invalid request")
    return None, str(detail)


def vercel_error_body(exc: Exception, response: Response) -> dict[str, Any]:
    """Vercel's error shape (SPEC §5): `{"error": "<sentence>"}`, and for every 400 also
    `"field"`, the API field it is about (null when the body as a whole is wrong)."""
    if isinstance(exc, exceptions.ValidationError):
        field, message = _first_error(exc.detail)
        return {"error": message, "field": field}
    data = response.data
    body: dict[str, Any] = {"error": str(data["detail"]) if isinstance(data, dict) and "detail" in data else str(data)}
    if response.status_code == status.HTTP_400_BAD_REQUEST:
        body["field"] = None
    return body
