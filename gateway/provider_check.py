"""The console's "Test connection" for a provider: one authenticated `GET {base_url}/models`."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from gateway.models import Provider, ProviderKind

TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class ConnectionResult:
    """What the test found: `ok`, the HTTP status (None when no answer came), the time it took
    (milliseconds) and a sentence for the user. Never holds the credential."""

    ok: bool
    status_code: int | None
    elapsed_ms: int
    message: str


def provider_test_connection(provider: Provider, *, timeout: float = TIMEOUT_SECONDS) -> ConnectionResult:
    """Call `GET {base_url}/models` with the provider's credential (`Authorization: Bearer`, as
    OpenAI-compatible APIs list their models) and report the outcome. The built-in mock provider
    always answers. Errors are described, not raised; the credential is never part of a message.
    """
    if provider.kind == ProviderKind.MOCK:
        return ConnectionResult(True, None, 0, "Connected · the built-in mock provider answers every request.")
    if not provider.base_url:
        return ConnectionResult(False, None, 0, "No base URL is set for this provider.")
    headers = {"Accept": "application/json"}
    credential = provider.get_credential()
    if credential:
        headers["Authorization"] = f"Bearer {credential}"
    started = time.perf_counter()
    try:
        response = httpx.get(f"{provider.base_url.rstrip('/')}/models", headers=headers, timeout=timeout)
    except httpx.TimeoutException:
        elapsed = int((time.perf_counter() - started) * 1000)
        return ConnectionResult(False, None, elapsed, f"No answer within {timeout:g} s.")
    except httpx.HTTPError as error:
        elapsed = int((time.perf_counter() - started) * 1000)
        return ConnectionResult(False, None, elapsed, f"Could not connect: {type(error).__name__}.")
    elapsed = int((time.perf_counter() - started) * 1000)
    status = response.status_code
    if status == 200:
        return ConnectionResult(True, status, elapsed, f"Connected · HTTP 200 in {elapsed} ms.")
    if status in (401, 403):
        return ConnectionResult(False, status, elapsed, f"HTTP {status}: the credential was refused.")
    return ConnectionResult(False, status, elapsed, f"HTTP {status} from {provider.base_url}/models.")
