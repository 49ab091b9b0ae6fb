"""Config versions: how every gateway process knows, before its next request, that what it
cached about a key or a model changed (SPEC §3: a change holds on the next request).

Two kinds of integer version, each bumped after the commit of any write to what the data plane
caches: one per resource group (its gateways, API keys, token quotas, spend budgets and rate
limits, on any level) and one for the catalog (providers and models, with their prices). With
`REDIS_URL` set they live in Redis (`<AIGW_REDIS_PREFIX>:{g<id>}:cfg:group`, in the group's hash
slot beside its counters, and `<AIGW_REDIS_PREFIX>:cfg:catalog`), shared by every process on
every machine. On the embedded
default there is one version for everything, the identity of the file `config-version` in the
data directory, which a bump replaces (a new inode; `os.replace` is atomic): so a `manage.py`
command or a test process that writes to the same SQLite database is seen too, for the price of
one `stat` per request. The data plane reads both of a request's versions in one round trip and
reloads what it cached under older ones, so a warm key costs no SQL.

Writes are caught by the models' `post_save`/`post_delete`/`m2m_changed` signals (each app
connects its models in `AppConfig.ready` with `track`), so services, jobs and the Django admin
all bump; a service that writes with `QuerySet.update()` calls `bump_group` itself.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TypeVar

from django.conf import settings
from django.db import transaction
from django.db.models import Model
from django.db.models.signals import m2m_changed, post_delete, post_save

from core.redis import TIMEOUT_SECONDS, sync_client

logger = logging.getLogger(__name__)
M = TypeVar("M", bound=Model)

LOCAL_VERSION_FILE = "config-version"


def group_version_name(group_id: int) -> str:
    """The Redis key of resource group `group_id`'s version, with the group's hash tag
    `{g<group_id>}` (the slot of its counters, `quotas.counters.counter_name`)."""
    return f"{settings.AIGW_REDIS_PREFIX}:{{g{group_id}}}:cfg:group"


def catalog_version_name() -> str:
    """The Redis key of the catalog's version."""
    return f"{settings.AIGW_REDIS_PREFIX}:cfg:catalog"


# A bump runs after a console or API write has committed: a Redis that is down or does not answer
# must cost that request at most this long (seconds), never hang it.
BUMP_TIMEOUT_SECONDS = TIMEOUT_SECONDS  # core.redis's connect and answer timeouts


@cache
def _redis(url: str):
    # one try: the write has committed either way
    return sync_client(url, retries=0)


def _bump_now(name: str) -> None:
    if settings.REDIS_URL:
        try:
            _redis(settings.REDIS_URL).incr(name)
        except Exception:  # the write has committed; tell the operator, never fail the write
            logger.exception("config version %s could not be bumped: gateway processes may serve it stale", name)
        return
    path = Path(settings.DATA_DIR) / LOCAL_VERSION_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=".config-version-", delete=False) as new:
        new.write(name)
    os.replace(new.name, path)


def _bump(name: str) -> None:
    transaction.on_commit(lambda: _bump_now(name), robust=True)


def bump_group(group_id: int | None) -> None:
    """Bump resource group `group_id`'s version once the current transaction commits (at
    once outside one). None (an object without a group) does nothing."""
    if group_id is not None:
        _bump(group_version_name(group_id))


def bump_catalog() -> None:
    """Bump the catalog's version (providers, models, prices) once the transaction commits."""
    _bump(catalog_version_name())


def read_local(names: list[str]) -> list[int]:
    """The embedded default's versions of `names`: all the same, the identity of the version
    file (inode and modification time in ns), 0 before the first bump."""
    try:
        # os.path.join, not pathlib: this runs on every request, and a Path costs 6 us more.
        stat = os.stat(os.path.join(settings.DATA_DIR, LOCAL_VERSION_FILE))
    except FileNotFoundError:
        return [0] * len(names)
    version = stat.st_ino << 64 | stat.st_mtime_ns
    return [version] * len(names)


def track(model: type[M], group_of: Callable[[M], int | None] | None = None) -> None:
    """Bump on every save and delete of `model` (and change of its many-to-many fields): the
    version of the group that `group_of(instance)` names, or, without `group_of`, the catalog's."""

    def changed(sender, instance, **kwargs) -> None:
        if group_of is None:
            bump_catalog()
        else:
            bump_group(group_of(instance))

    uid = f"aigw-freshness-{model._meta.label}"
    post_save.connect(changed, sender=model, weak=False, dispatch_uid=uid + "-save")
    post_delete.connect(changed, sender=model, weak=False, dispatch_uid=uid + "-delete")
    for field in model._meta.many_to_many:
        through = getattr(model, field.name).through
        m2m_changed.connect(changed, sender=through, weak=False, dispatch_uid=f"{uid}-{field.name}")
