"""A fake OpenAI-compatible upstream on loopback that reports known usage.

The model name picks the behaviour:
- `fake-model`: 200 with `FAKE_USAGE` (including cached and reasoning tokens); streams too.
- `fake-400`: 400 with an OpenAI error body (context too long).
- `fake-500`: 500.
- `fake-slow`: answers after `SLOW_SECONDS` (longer than the gateway's upstream timeout in tests).
- `fake-bytes`: a provider that counts tokens as no real one can exceed (`bytes_usage`): one
  token per UTF-8 byte of everything it tokenizes, the largest overheads any provider adds, and
  every output token it was allowed (more than any default when the request sets no limit).
Every request's path, headers and JSON body is kept in `requests` for assertions.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAKE_USAGE = {
    "prompt_tokens": 1200,
    "completion_tokens": 350,
    "total_tokens": 1550,
    "prompt_tokens_details": {"cached_tokens": 1000},
    "completion_tokens_details": {"reasoning_tokens": 100},
}
FAKE_ANSWER = "The fake upstream answers."
FAKE_REQUEST_ID = "fake-upstream-req-1"
SLOW_SECONDS = 3.0

# The largest overheads a real provider adds on top of what a request carries.
BYTES_PER_MESSAGE = 5  # Llama 3's template: <|start_header_id|>, role, <|end_header_id|>, \n\n, <|eot_id|>
BYTES_PER_REQUEST = 3  # OpenAI's reply priming
BYTES_FOR_TOOLS = 346  # Anthropic's tool-use system prompt
BYTES_PER_IMAGE = 48_169  # gpt-4o-mini, detail high: 2,833 + 8 tiles x 5,667
BYTES_PER_LOW_DETAIL_IMAGE = 2_833
BYTES_UNLIMITED_OUTPUT = 5_000  # what it writes when the request sets no output limit


def _strings(value) -> int:
    """UTF-8 bytes of every string (values and keys) in a JSON value."""
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, dict):
        return sum(len(str(k).encode()) + _strings(v) for k, v in value.items())
    if isinstance(value, list):
        return sum(_strings(v) for v in value)
    return 0


def bytes_usage(body: dict) -> dict:
    """`fake-bytes`' usage of a chat completions `body`: prompt = UTF-8 bytes of every message's
    strings (each image at the dearest vision price instead), of the tools and of the response
    format, + BYTES_PER_MESSAGE per message + BYTES_PER_REQUEST (+ BYTES_FOR_TOOLS); completion
    = the request's output limit (else BYTES_UNLIMITED_OUTPUT) per choice, times `n`."""
    prompt = BYTES_PER_REQUEST
    for message in body.get("messages", []):
        prompt += BYTES_PER_MESSAGE
        for key, value in message.items():
            if key == "content" and isinstance(value, list):
                for part in value:
                    if part.get("type") == "image_url":
                        low = (part.get("image_url") or {}).get("detail") == "low"
                        prompt += BYTES_PER_LOW_DETAIL_IMAGE if low else BYTES_PER_IMAGE
                    else:
                        prompt += _strings(part)
            else:
                prompt += _strings(value)
    if body.get("tools"):
        prompt += BYTES_FOR_TOOLS + _strings(body["tools"])
    prompt += _strings(body.get("response_format"))
    limit = body.get("max_completion_tokens") or body.get("max_tokens") or BYTES_UNLIMITED_OUTPUT
    completion = limit * (body.get("n") or 1)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # the body ends when the connection closes: fine for SSE

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        self.server.requests.append({"path": self.path, "headers": dict(self.headers), "json": body})
        model = body.get("model")
        if model == "fake-400":
            return self._json(
                400,
                {
                    "error": {
                        "message": "context too long",
                        "type": "invalid_request_error",
                        "param": "messages",
                        "code": "context_length_exceeded",
                    }
                },
            )
        if model == "fake-500":
            return self._json(500, {"error": {"message": "boom", "type": "server_error"}})
        if model == "fake-slow":
            time.sleep(SLOW_SECONDS)
        if body.get("stream"):
            return self._stream(body)
        return self._json(
            200,
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": 1700000000,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": FAKE_ANSWER},
                        "finish_reason": "stop",
                    }
                ],
                "usage": _usage(body),
            },
        )

    def _json(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("x-request-id", FAKE_REQUEST_ID)
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, body: dict) -> None:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("x-request-id", FAKE_REQUEST_ID)
        self.end_headers()

        def event(choices, usage=None) -> None:
            chunk = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 1700000000,
                "model": body.get("model"),
                "choices": choices,
            }
            if include_usage:
                chunk["usage"] = usage
            self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            self.wfile.flush()

        event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        for word in FAKE_ANSWER.split(" "):
            event([{"index": 0, "delta": {"content": word + " "}, "finish_reason": None}])
        event([{"index": 0, "delta": {}, "finish_reason": "stop"}])
        if include_usage:
            event([], _usage(body))
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


def _usage(body: dict) -> dict:
    return bytes_usage(body) if body.get("model") == "fake-bytes" else FAKE_USAGE


class FakeUpstream:
    """Runs the fake upstream on 127.0.0.1 in a thread; `base_url` ends in `/v1`."""

    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.requests = []
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    @property
    def requests(self) -> list[dict]:
        return self.server.requests

    def start(self) -> FakeUpstream:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
