"""The audit trail (SPEC §7): every change to a gateway, API key, limit, provider, model, member
or role, with who, when, what, before and after.

Services call `audit_record(...)` after a change; who made it comes from the context:
- `AuditMiddleware` (console and API requests): the signed-in user, or the user of the personal
  API token (DRF sets it on the underlying request), `via` = `api` under `/api/`, else `console`.
- `audit_actor(user, via=...)`: management commands and jobs that act for someone.
- nothing: `via` = `system`, no actor (aigw itself, e.g. a job suspending keys).

`audit_snapshot(obj, fields)` turns model fields into a JSON-safe dict (Decimal → string,
datetime → ISO 8601 UTC, foreign keys → id) for `before` and `after`. Never pass a secret.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from django.db import models

from core.models import AuditEvent, AuditVia


@dataclass(frozen=True)
class _Actor:
    request: Any = None  # the Django HttpRequest; its `.user` is read when an event is recorded
    user: Any = None
    via: str = AuditVia.SYSTEM


_actor: ContextVar[_Actor | None] = ContextVar("aigw_audit_actor", default=None)


@contextlib.contextmanager
def audit_actor(user=None, *, via: str = AuditVia.COMMAND) -> Iterator[None]:
    """Attribute the changes made inside the block to `user` (None: nobody) through `via`."""
    token = _actor.set(_Actor(user=user, via=via))
    try:
        yield
    finally:
        _actor.reset(token)


class AuditMiddleware:
    """Remembers the request for the audit trail of the changes its view makes."""

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response

    def __call__(self, request):
        via = AuditVia.API if request.path.startswith("/api/") else AuditVia.CONSOLE
        token = _actor.set(_Actor(request=request, via=via))
        try:
            return self.get_response(request)
        finally:
            _actor.reset(token)


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")  # 10 and 10.0000 are the same amount
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, models.Model):
        return value.pk
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_value(v) for v in value]
    return str(value)


def audit_snapshot(obj: models.Model | None, fields: Iterable[str]) -> dict[str, Any] | None:
    """`{field: value}` of `obj` for the given field names, JSON-safe; None for no object.

    A foreign key is given by its id (`gateway` → the gateway's id). Never name a secret field.
    """
    if obj is None:
        return None
    snapshot: dict[str, Any] = {}
    for name in fields:
        try:
            field = obj._meta.get_field(name)
        except Exception:  # not a model field: a property or plain attribute
            field = None
        if field is not None and field.is_relation and (field.many_to_one or field.one_to_one):
            snapshot[name] = getattr(obj, field.attname)  # type: ignore[union-attr]
        else:
            snapshot[name] = _json_value(getattr(obj, name))
    return snapshot


def _client_ip(request) -> str | None:
    address = request.META.get("REMOTE_ADDR") or None
    return address


def audit_record(
    *,
    action: str,
    target: models.Model,
    target_type: str | None = None,
    target_name: str | None = None,
    resource_group: Any = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent | None:
    """Write one audit event for a change, attributed to the current actor (see module doc).

    Args:
        action: `<target type>.<verb>`, e.g. `gateway.create`, `api_key.revoke`,
            `spend_budget.update`, `member.remove`.
        target: the changed object; its pk is the event's `target_id`.
        target_type: defaults to the action's part before the dot.
        target_name: defaults to `target.name` if it has one, else `str(target)`.
        resource_group: the group the change belongs to (for who may read the event): a
            `ResourceGroup`, its id, or None for instance-wide objects (providers, models).
        before, after: JSON-safe field values (see `audit_snapshot`); an update whose before
            and after are equal writes nothing and returns None.

    Returns:
        The stored `AuditEvent`, or None for a change that changed nothing.
    """
    if before is not None and after is not None and before == after:
        return None
    context = _actor.get() or _Actor()
    user = context.user
    ip = None
    if context.request is not None:
        user = getattr(context.request, "user", None)
        ip = _client_ip(context.request)
    if user is not None and not getattr(user, "is_authenticated", False):
        user = None
    name = target_name if target_name is not None else getattr(target, "name", None) or str(target)
    group_field = {"resource_group_id": resource_group} if isinstance(resource_group, int) else {}
    if not group_field:
        group_field = {"resource_group": resource_group}
    return AuditEvent.objects.create(
        **group_field,
        actor=user,
        actor_name=user.get_username() if user is not None else "",
        via=context.via,
        action=action,
        target_type=target_type or action.split(".", 1)[0],
        target_id=str(target.pk),
        target_name=str(name)[:200],
        before=before,
        after=after,
        ip_address=ip,
    )
