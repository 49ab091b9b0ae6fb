"""The `openai` provider: any OpenAI-compatible base URL (OpenAI, Azure OpenAI v1, vLLM, Ollama).

Requests go out through the data plane's own HTTP/1.1 client (`dataplane.providers.http`: one
keep-alive pool per origin per process). The body is forwarded as the client sent it, with
`model` set to the upstream name.
"""

from __future__ import annotations

import orjson
from django.conf import settings

from dataplane.providers.base import UpstreamError, UpstreamResponse, UpstreamStream
from dataplane.providers.http import Client, HTTPError, Response
from dataplane.registry import ModelRoute
from dataplane.usage import usage_from_openai
from gateway.pricing import TokenUsage

_JSON = ("content-type", "application/json")
_IDENTITY = ("accept-encoding", "identity")


class OpenAICompatibleClient:
    """Calls `{base_url}/chat/completions` with `Authorization: Bearer <credential>`
    (a `dataplane.providers.base.ProviderClient`)."""

    def __init__(self) -> None:
        self._client = Client(
            timeout=settings.AIGW_UPSTREAM_TIMEOUT_SECONDS,
            connect_timeout=settings.AIGW_UPSTREAM_CONNECT_TIMEOUT_SECONDS,
        )
        self._headers: dict[str, list[tuple[str, str]]] = {}  # credential -> request headers

    def _headers_for(self, credential: str) -> list[tuple[str, str]]:
        headers = self._headers.get(credential)
        if headers is None:
            headers = [_JSON, _IDENTITY]
            if credential:
                headers.append(("authorization", f"Bearer {credential}"))
            if len(self._headers) > 1_000:  # credentials rotated many times: start over
                self._headers.clear()
            self._headers[credential] = headers
        return headers

    async def chat(self, route: ModelRoute, body: dict, stream: bool) -> UpstreamResponse | UpstreamStream:
        """POST a chat completion upstream.

        Returns an `UpstreamStream` for a 200 streaming answer, else the whole `UpstreamResponse`.

        Raises:
            UpstreamError: on connection failures, timeouts (`timeout=True`) and broken answers;
                `retryable` when the connection was never made.
        """
        url = f"{route.base_url.rstrip('/')}/chat/completions"
        try:
            response = await self._client.post(url, orjson.dumps(body), self._headers_for(route.credential))
        except HTTPError as exc:
            raise _upstream_error(route, exc, "could not be reached") from exc
        upstream_request_id = response.headers.get("x-request-id", "")
        if stream and response.status == 200:
            return UpstreamStream(
                chunks=_raw_chunks(response, route),
                upstream_request_id=upstream_request_id,
                close=response.close,
            )
        try:
            body_bytes = await response.read()
        except HTTPError as exc:
            raise _upstream_error(route, exc, "broke off its answer") from exc
        finally:
            await response.close()
        return UpstreamResponse(
            status=response.status,
            body=body_bytes,
            content_type=response.headers.get("content-type", "application/json"),
            upstream_request_id=upstream_request_id,
        )

    def usage(self, payload: object) -> TokenUsage:
        """OpenAI's `usage` object as `TokenUsage` (`dataplane.usage.usage_from_openai`)."""
        return usage_from_openai(payload if isinstance(payload, dict) else None)

    async def close(self) -> None:
        self._client.close()


def _upstream_error(route: ModelRoute, exc: HTTPError, what: str) -> UpstreamError:
    if exc.timeout:
        return UpstreamError(f"{route.provider_name} did not answer in time", timeout=True, retryable=not exc.connected)
    return UpstreamError(f"{route.provider_name} {what}: {exc}", retryable=not exc.connected)


async def _raw_chunks(response: Response, route: ModelRoute):
    try:
        async for chunk in response.chunks():
            yield chunk
    except HTTPError as exc:
        if exc.timeout:
            raise UpstreamError(f"{route.provider_name} stalled mid-stream", timeout=True) from exc
        raise UpstreamError(f"{route.provider_name} broke off the stream") from exc
