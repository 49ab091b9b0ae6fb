"""The `openai` provider: any OpenAI-compatible base URL (OpenAI, Azure OpenAI v1, vLLM, Ollama).

Requests go out through one shared httpx.AsyncClient per process (connection pooling, HTTP/1.1
keep-alive). The body is forwarded as the client sent it, with `model` set to the upstream name.
"""

from __future__ import annotations

import httpx
import orjson
from django.conf import settings

from dataplane.providers.base import UpstreamError, UpstreamResponse, UpstreamStream
from dataplane.registry import ModelRoute


class OpenAICompatibleClient:
    """Calls `{base_url}/chat/completions` with `Authorization: Bearer <credential>`."""

    def __init__(self) -> None:
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(
                settings.AIGW_UPSTREAM_TIMEOUT_SECONDS, connect=settings.AIGW_UPSTREAM_CONNECT_TIMEOUT_SECONDS
            ),
            limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200),
            follow_redirects=False,
        )

    def _request(self, route: ModelRoute, path: str, body: dict) -> httpx.Request:
        headers = {"content-type": "application/json", "accept-encoding": "identity"}
        if route.credential:
            headers["authorization"] = f"Bearer {route.credential}"
        return self._client.build_request(
            "POST", f"{route.base_url.rstrip('/')}/{path}", content=orjson.dumps(body), headers=headers
        )

    async def chat(self, route: ModelRoute, body: dict, stream: bool) -> UpstreamResponse | UpstreamStream:
        """POST a chat completion upstream.

        Returns an `UpstreamStream` for a 200 streaming answer, else the whole `UpstreamResponse`.

        Raises:
            UpstreamError: on connection failures and timeouts (`timeout=True`).
        """
        request = self._request(route, "chat/completions", body)
        try:
            response = await self._client.send(request, stream=stream)
        except httpx.TimeoutException as exc:
            raise UpstreamError(f"{route.provider_name} did not answer in time", timeout=True) from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(f"{route.provider_name} could not be reached: {type(exc).__name__}") from exc
        upstream_request_id = response.headers.get("x-request-id", "")
        if stream and response.status_code == 200:
            return UpstreamStream(
                chunks=_raw_chunks(response, route),
                upstream_request_id=upstream_request_id,
                close=response.aclose,
            )
        try:
            body_bytes = await response.aread()
        except httpx.TimeoutException as exc:
            raise UpstreamError(f"{route.provider_name} did not answer in time", timeout=True) from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(f"{route.provider_name} broke off its answer") from exc
        finally:
            await response.aclose()
        return UpstreamResponse(
            status=response.status_code,
            body=body_bytes,
            content_type=response.headers.get("content-type", "application/json"),
            upstream_request_id=upstream_request_id,
        )

    async def close(self) -> None:
        await self._client.aclose()


async def _raw_chunks(response: httpx.Response, route: ModelRoute):
    try:
        async for chunk in response.aiter_raw():
            yield chunk
    except httpx.TimeoutException as exc:
        raise UpstreamError(f"{route.provider_name} stalled mid-stream", timeout=True) from exc
    except httpx.HTTPError as exc:
        raise UpstreamError(f"{route.provider_name} broke off the stream") from exc
