"""OpenAI-shaped errors of the data plane (SPEC §4 error table)."""

from __future__ import annotations

import orjson


class ProxyError(Exception):
    """An error answered to the client as `{"error": {"message", "type", "param", "code"}}`.

    `status` is the HTTP status; `headers` are extra response headers (e.g. `retry-after`).
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        type: str = "invalid_request_error",  # noqa: A002 - OpenAI's field name
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.type = type
        self.param = param
        self.headers = headers or {}

    def body(self) -> bytes:
        return orjson.dumps(
            {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}
        )


def invalid_api_key() -> ProxyError:
    return ProxyError(
        401,
        "invalid_api_key",
        "Incorrect or missing API key. Send it as 'Authorization: Bearer <key>' or 'api-key: <key>'.",
        type="authentication_error",
    )


def invalid_request(message: str, param: str | None = None, status: int = 400) -> ProxyError:
    return ProxyError(status, "invalid_request_error", message, param=param)


def too_many_invalid_keys(retry_after: int) -> ProxyError:
    """429 for a client address that sent too many invalid API keys (dataplane.throttle);
    `retry_after` is in seconds."""
    return ProxyError(
        429,
        "rate_limit_exceeded",
        f"Too many requests with an incorrect or missing API key from your address. Try again in {retry_after}s.",
        type="requests",
        headers={"retry-after": str(retry_after)},
    )


def service_unavailable(dependency: str, retry_after: int = 1) -> ProxyError:
    """503 when a dependency the request needs (the database, Redis) cannot be reached: the
    request is refused, never admitted unchecked (SPEC §3). `retry_after` is in seconds."""
    return ProxyError(
        503,
        "service_unavailable",
        f"The gateway cannot reach its {dependency} right now; nothing was sent upstream. Retry in {retry_after}s.",
        type="server_error",
        headers={"retry-after": str(retry_after)},
    )


def internal_error(request_id: str) -> ProxyError:
    """500 for an error the gateway did not expect; the message names the request id that the
    log line of the error carries."""
    return ProxyError(
        500,
        "internal_error",
        f"The gateway failed on this request ({request_id}); it has been logged.",
        type="server_error",
    )
