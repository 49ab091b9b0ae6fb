"""The built-in `mock` provider: deterministic answers and usage, no account, no network.

- `mock/echo` answers `Echo: <last user message>`.
- `mock/large` answers a fixed long text (up to 256 tokens) and reports cached prompt tokens
  (half the prompt, rounded down) and 16 reasoning tokens, so every priced token type is used.

Tokens are OpenAI's o200k_base tokens (quotas.estimate): a prompt costs its messages' text
tokens + 4 per message + 3, exactly what the gateway estimates before forwarding. `max_tokens` / `max_completion_tokens`
cut the answer (finish_reason `length`). Provider setting `latency_ms` delays the answer (and
is spread over the chunks of a stream). Output is OpenAI's chat completion format, streaming
included (`stream_options.include_usage` adds the final usage chunk).
"""

from __future__ import annotations

import asyncio
import hashlib
import time

import orjson

from dataplane.providers.base import UpstreamResponse, UpstreamStream
from dataplane.registry import ModelRoute
from dataplane.usage import usage_from_openai
from gateway.pricing import TokenUsage
from quotas.estimate import decode_one, encode, message_text, prompt_tokens

_LARGE_TEXT = (
    "The gateway meters every request in tokens and dollars, holds each key to its limits, and "
    "writes a usage event that auditors can read later. "
) * 12
LARGE_REASONING_TOKENS = 16


def _answer(route: ModelRoute, body: dict) -> tuple[list[str], str, int, int, int]:
    """Returns (answer pieces, finish_reason, prompt tokens, cached tokens, reasoning tokens)."""
    messages = body.get("messages") or []
    prompt = prompt_tokens(messages)
    user_texts = [message_text(m) for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    if route.upstream_model == "mock/large":
        pieces = [decode_one(t) for t in encode(_LARGE_TEXT)[:256]]
        cached, reasoning = prompt // 2, LARGE_REASONING_TOKENS
    else:
        pieces = [decode_one(t) for t in encode("Echo: " + (user_texts[-1] if user_texts else ""))]
        cached, reasoning = 0, 0
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    finish = "stop"
    if isinstance(limit, int) and limit > 0 and len(pieces) + reasoning > limit:
        pieces = pieces[: max(limit - reasoning, 0)]
        finish = "length"
    return pieces, finish, prompt, cached, reasoning


def _usage(prompt: int, completion: int, cached: int, reasoning: int) -> dict:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }


class MockClient:
    """Answers chat completions in-process, as an OpenAI-compatible upstream would (a
    `dataplane.providers.base.ProviderClient`)."""

    def usage(self, payload: object) -> TokenUsage:
        """The mock reports OpenAI's `usage` shape (`dataplane.usage.usage_from_openai`)."""
        return usage_from_openai(payload if isinstance(payload, dict) else None)

    async def close(self) -> None:
        return None

    async def chat(self, route: ModelRoute, body: dict, stream: bool) -> UpstreamResponse | UpstreamStream:
        pieces, finish, prompt, cached, reasoning = _answer(route, body)
        completion = len(pieces) + reasoning
        latency = float(route.provider_settings.get("latency_ms", 0)) / 1000
        request_digest = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()[:24]
        completion_id = f"chatcmpl-mock-{request_digest}"
        created = int(time.time())
        if not stream:
            if latency:
                await asyncio.sleep(latency)
            payload = {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": route.upstream_model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "".join(pieces)},
                        "finish_reason": finish,
                    }
                ],
                "usage": _usage(prompt, completion, cached, reasoning),
            }
            return UpstreamResponse(status=200, body=orjson.dumps(payload), upstream_request_id=completion_id)

        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict, finish_reason: str | None = None, usage: dict | None = None, choices=True) -> bytes:
            data: dict = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": route.upstream_model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}] if choices else [],
            }
            if include_usage:
                data["usage"] = usage
            return b"data: " + orjson.dumps(data) + b"\n\n"

        async def chunks():
            step = latency / (len(pieces) + 1) if latency else 0
            if step:
                await asyncio.sleep(step)
            yield chunk({"role": "assistant", "content": ""})
            for piece in pieces:
                if step:
                    await asyncio.sleep(step)
                yield chunk({"content": piece})
            yield chunk({}, finish_reason=finish)
            if include_usage:
                yield chunk({}, usage=_usage(prompt, completion, cached, reasoning), choices=False)
            yield b"data: [DONE]\n\n"

        return UpstreamStream(chunks=chunks(), upstream_request_id=completion_id)
