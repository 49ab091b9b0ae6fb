"""ASGI entry point: `/v1/` goes to the data plane, everything else to Django.

Serve with `uvicorn config.asgi:application`. The lifespan protocol is handled here: on the
embedded default the background jobs start with the server (config.scheduler); on shutdown
they stop and the data plane writes the usage events still queued.
"""

from __future__ import annotations

import logging
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

django_application = get_asgi_application()

from django.conf import settings  # noqa: E402

from config.scheduler import InProcessJobs, start_in_process_jobs  # noqa: E402  (needs Django set up)
from dataplane.app import ProxyApp  # noqa: E402  (needs Django set up)

log = logging.getLogger("config.asgi")

LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "[::1]", "::1"}


def warn_if_only_loopback_hosts() -> bool:
    """Log a warning when ALLOWED_HOSTS names only this machine's loopback names: the server
    may listen on 0.0.0.0, but a request for any real hostname then gets a bare 400. Returns
    whether it warned."""
    hosts = {host.lower().removesuffix(".") for host in settings.ALLOWED_HOSTS}
    if not hosts or not hosts <= LOOPBACK_HOSTS:
        return False
    log.warning(
        "ALLOWED_HOSTS is %s, so only requests for localhost are served: requests for any other "
        "hostname get 400 Bad Request. Set ALLOWED_HOSTS (and CSRF_TRUSTED_ORIGINS, e.g. "
        "https://aigw.example.com) to the names clients use; see README.md.",
        ",".join(settings.ALLOWED_HOSTS),
    )
    return True


class Router:
    """Sends `/v1/` HTTP requests to the data plane and the rest to Django."""

    def __init__(self) -> None:
        self.proxy = ProxyApp()
        self.jobs: InProcessJobs | None = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http" and scope["path"].startswith("/v1/"):
            await self.proxy(scope, receive, send)
        else:
            await django_application(scope, receive, send)

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                warn_if_only_loopback_hosts()
                if settings.AIGW_IN_PROCESS_JOBS:  # the embedded default: no Celery worker needed
                    self.jobs = start_in_process_jobs()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.jobs is not None:
                    await self.jobs.stop()
                await self.proxy.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


application = Router()
