"""The provider interface: what every upstream client takes and returns to the data plane.

A provider kind implements `ProviderClient`: a request in (the route and the body to send);
a whole `UpstreamResponse` or an `UpstreamStream` out, each with the upstream's request id;
usage normalised to `TokenUsage` by `usage`; failures raised as `UpstreamError`, classified
as timeouts or not and as retryable (on another deployment) or not.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from dataplane.registry import ModelRoute
    from gateway.pricing import TokenUsage


class UpstreamError(Exception):
    """The provider could not be reached or failed. `timeout` tells 504 from 502; `retryable`
    is True when the request did not reach the provider (a refused or timed-out connect), so
    sending it to another deployment cannot charge twice."""

    def __init__(self, message: str, *, timeout: bool = False, retryable: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout
        self.retryable = retryable


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


class ProviderClient(Protocol):
    """One provider kind's client; one instance per process, shared by every request."""

    async def chat(self, route: ModelRoute, body: dict, stream: bool) -> UpstreamResponse | UpstreamStream:
        """Send a chat completions `body` (already in the upstream's model name) to `route`.
        Returns an `UpstreamStream` for a 200 streaming answer, else the whole answer.

        Raises:
            UpstreamError: the provider could not be reached, timed out or broke off."""
        ...

    def usage(self, payload: object) -> TokenUsage:
        """The token usage of the `usage` object the provider reported (a parsed JSON value)."""
        ...

    async def close(self) -> None:
        """Close the client's connections."""
        ...
