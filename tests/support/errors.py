"""Assertions on the OpenAI-shaped errors the data plane answers with, as the `openai` SDK raises them."""

from __future__ import annotations

import openai


def assert_service_unavailable(error: openai.APIStatusError, dependency: str) -> None:
    """`error` is aigw's 503 for a dependency that is down: `service_unavailable`, type
    `server_error`, `Retry-After: 1`, and a message that names `dependency`."""
    assert error.status_code == 503
    assert error.response.headers["retry-after"] == "1"
    body = error.response.json()["error"]
    assert (body["type"], body["code"]) == ("server_error", "service_unavailable")
    assert dependency in body["message"]
