"""A fake OpenAI-compatible upstream on loopback that reports known usage.

The model name picks the behaviour:
- `fake-model`: 200 with `FAKE_USAGE` (including cached and reasoning tokens); streams too.
- `fake-400`: 400 with an OpenAI error body (context too long).
- `fake-500`: 500.
- `fake-slow`: answers after `SLOW_SECONDS` (longer than the gateway's upstream timeout in tests).
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
                "usage": FAKE_USAGE,
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
            event([], FAKE_USAGE)
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


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
