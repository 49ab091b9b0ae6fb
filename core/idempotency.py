"""Safe retries of management API creates: the `Idempotency-Key` request header.

A POST that carries `Idempotency-Key: <1–255 visible characters>` is performed once per user
and key: a retry with the same key, method, path and body within 24 hours gets the first
answer again (status and body, with `Idempotent-Replayed: true`), and nothing is created twice.
The same key with another request is 422; a retry while the first is still running is 409.
Server errors (5xx) are not stored, so the retry runs again. (Semantics of Stripe's API and the
IETF draft "The Idempotency-Key HTTP Header Field".)
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder

from core.crypto import decrypt, encrypt
from core.models import IdempotencyRecord

HEADER = "Idempotency-Key"
KEEP_FOR = timedelta(hours=24)
MAX_KEY_LENGTH = 255

IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    name=HEADER,
    type=OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    required=False,
    description=(
        "Any unique string (a UUID) of at most 255 characters. A retry with the same key and body "
        "within 24 hours returns the first answer (with `Idempotent-Replayed: true`) instead of "
        "creating again; the same key with another body is 422; a retry while the first request "
        "still runs is 409."
    ),
)


def _error(code: int, message: str) -> Response:
    return Response({"detail": message}, status=code)


def _fingerprint(request: Request) -> str:
    body = json.dumps(request.data, sort_keys=True, cls=JSONEncoder)
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def _replay(record: IdempotencyRecord) -> Response:
    data = json.loads(decrypt(record.response_body), parse_float=Decimal) if record.response_body else None
    response = Response(data, status=record.status_code)
    response["Idempotent-Replayed"] = "true"
    return response


def idempotent(handler: Callable[..., Response]) -> Callable[..., Response]:
    """Decorate a DRF view's `post` so that the `Idempotency-Key` header makes retries safe.

    Without the header the request runs as usual. Errors: 400 for a key longer than 255
    characters or with control characters, 409 while the first request with the key runs,
    422 when the key was used with another method, path or body.
    """

    @functools.wraps(handler)
    def wrapper(view, request: Request, *args, **kwargs) -> Response:
        key = request.headers.get(HEADER)
        if key is None or not request.user.is_authenticated:
            return handler(view, request, *args, **kwargs)
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            return _error(status.HTTP_400_BAD_REQUEST, f"{HEADER} must be 1 to {MAX_KEY_LENGTH} visible characters.")
        fingerprint = _fingerprint(request)
        IdempotencyRecord.objects.filter(user=request.user, created_at__lt=timezone.now() - KEEP_FOR).delete()
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(user=request.user, key=key, fingerprint=fingerprint)
        except IntegrityError:
            existing = IdempotencyRecord.objects.filter(user=request.user, key=key).first()
            if existing is None:  # purged between our insert and this read: let the client retry
                return _error(status.HTTP_409_CONFLICT, f"A request with this {HEADER} is being processed; retry.")
            if existing.fingerprint != fingerprint:
                return _error(
                    status.HTTP_422_UNPROCESSABLE_ENTITY,
                    f"This {HEADER} was used with another request; use a new key for a new request.",
                )
            if existing.status_code is None:
                return _error(status.HTTP_409_CONFLICT, f"A request with this {HEADER} is being processed; retry.")
            return _replay(existing)
        try:
            response = handler(view, request, *args, **kwargs)
        except Exception:
            record.delete()
            raise
        if response.status_code >= 500:
            record.delete()
            return response
        body = "" if response.data is None else encrypt(json.dumps(response.data, cls=JSONEncoder))
        IdempotencyRecord.objects.filter(pk=record.pk).update(status_code=response.status_code, response_body=body)
        return response

    return wrapper
