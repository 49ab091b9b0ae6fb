"""What every upstream client returns to the data plane."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field


class UpstreamError(Exception):
    """The provider could not be reached or failed; `timeout` tells 504 from 502."""

    def __init__(self, message: str, *, timeout: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout


@dataclass(slots=True)
class UpstreamResponse:
    """A complete upstream response: status, body bytes as sent, and its request id."""

    status: int
    body: bytes
    content_type: str = "application/json"
    upstream_request_id: str = ""


async def _nothing() -> None:
    return None


@dataclass(slots=True)
class UpstreamStream:
    """A 200 streaming upstream response: raw SSE bytes as they arrive; `close` ends it."""

    chunks: AsyncIterator[bytes]
    upstream_request_id: str = ""
    close: Callable[[], Awaitable[None]] = field(default=_nothing)
