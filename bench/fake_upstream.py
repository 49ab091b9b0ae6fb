#!/usr/bin/env python3
"""A fast fake OpenAI upstream for the data-plane benchmark (`bench/dataplane.py`).

A raw asyncio protocol server (uvloop when installed), HTTP/1.1 with keep-alive and pipelining,
so that it is never the bottleneck of a gateway in front of it (tens of thousands of requests
per second on one core). Any POST to a path ending in `/chat/completions`:
- without `"stream": true`: a fixed `chat.completion` JSON with `usage` {prompt_tokens: 12,
  completion_tokens: 7, total_tokens: 19}, a fresh `id` and an `x-request-id` header;
- with `"stream": true`: server-sent events with chunked transfer encoding: a role chunk,
  CONTENT_CHUNKS content chunks, a finish chunk, then (only when `stream_options.include_usage`
  is true) a usage chunk with `choices: []`, then `data: [DONE]`.
GET `/v1/models` lists one model; anything else is 404.

    python bench/fake_upstream.py --port 9100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import time

try:
    import orjson

    _loads = orjson.loads
except ImportError:  # pragma: no cover - any JSON parser will do
    _loads = json.loads

MODEL = "fake-bench-model"
USAGE = {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}
CONTENT_CHUNKS = ["Hello", " from", " the", " fake", " upstream", "."]
MAX_HEADER_BYTES = 64 * 1024
CREATED = int(time.time())


def _completion_parts() -> tuple[bytes, bytes]:
    """The non-streaming answer split around its id (the id is `chatcmpl-<n>`)."""
    body = {
        "id": "@ID@",
        "object": "chat.completion",
        "created": CREATED,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(CONTENT_CHUNKS)},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": USAGE,
        "system_fingerprint": "fp_bench",
    }
    before, after = json.dumps(body, separators=(",", ":")).split("@ID@")
    return before.encode(), after.encode()


def _chunk(delta: dict, finish_reason: str | None = None) -> dict:
    return {
        "id": "@ID@",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }


def _stream_parts(include_usage: bool) -> list[tuple[bytes, bytes]]:
    """The SSE stream's events (one HTTP chunk each), each split around its id."""
    events = [_chunk({"role": "assistant", "content": ""})]
    events += [_chunk({"content": text}) for text in CONTENT_CHUNKS]
    events.append(_chunk({}, "stop"))
    if include_usage:
        usage_chunk = _chunk({})
        usage_chunk["choices"] = []
        usage_chunk["usage"] = USAGE
        events.append(usage_chunk)
    payloads = [f"data: {json.dumps(e, separators=(',', ':'))}\n\n".encode() for e in events]
    parts = []
    for payload in payloads:
        before, after = payload.split(b"@ID@")
        parts.append((before, after))
    parts.append((b"data: [DONE]\n\n", b""))
    return parts


def stream_body(parts: list[tuple[bytes, bytes]], completion_id: bytes) -> bytes:
    """The chunked-encoded SSE body: one HTTP chunk per event, then the last (empty) chunk."""
    out = bytearray()
    for before, after in parts:
        event = before + completion_id + after if after else before
        out += b"%x\r\n" % len(event) + event + b"\r\n"
    out += b"0\r\n\r\n"
    return bytes(out)


COMPLETION_BEFORE, COMPLETION_AFTER = _completion_parts()
STREAM_WITH_USAGE = _stream_parts(True)
STREAM_WITHOUT_USAGE = _stream_parts(False)
MODELS_BODY = json.dumps({"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "bench"}]}).encode()
NOT_FOUND = b'{"error":{"message":"not found","type":"invalid_request_error"}}'


class UpstreamProtocol(asyncio.Protocol):
    """One client connection: parses pipelined HTTP/1.1 requests and answers each at once."""

    counter = 0  # requests answered by this process, for the ids

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEADER_BYTES:
                    self.transport.close()
                return
            head = bytes(self.buffer[:end]).decode("latin-1")
            lines = head.split("\r\n")
            request_line = lines[0].split(" ")
            if len(request_line) != 3:
                self.transport.close()
                return
            method, path, version = request_line
            length = 0
            chunked = False
            close = version == "HTTP/1.0"
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value.strip())
                elif name == "transfer-encoding" and "chunked" in value.lower():
                    chunked = True
                elif name == "connection":
                    value = value.strip().lower()
                    close = value == "close" or (close and value != "keep-alive")
            start = end + 4
            if chunked:
                body, consumed = _dechunk(self.buffer, start)
                if body is None:
                    return  # wait for the rest
            else:
                if len(self.buffer) < start + length:
                    return
                body, consumed = bytes(self.buffer[start : start + length]), start + length
            del self.buffer[:consumed]
            self.answer(method, path, body, close)
            if close:
                self.transport.close()
                return

    def answer(self, method: str, path: str, body: bytes, close: bool) -> None:
        UpstreamProtocol.counter += 1
        request_id = f"fake-{os.getpid()}-{UpstreamProtocol.counter}".encode()
        keep = b"close" if close else b"keep-alive"
        path = path.split("?", 1)[0]
        if method == "POST" and path.endswith("/chat/completions"):
            stream = include_usage = False
            if b'"stream"' in body:
                try:
                    parsed = _loads(body)
                except ValueError:
                    parsed = {}
                stream = parsed.get("stream") is True
                include_usage = bool((parsed.get("stream_options") or {}).get("include_usage"))
            completion_id = b"chatcmpl-" + request_id
            if stream:
                payload = stream_body(STREAM_WITH_USAGE if include_usage else STREAM_WITHOUT_USAGE, completion_id)
                self.transport.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
                    b"transfer-encoding: chunked\r\nx-request-id: "
                    + request_id
                    + b"\r\nconnection: "
                    + keep
                    + b"\r\n\r\n"
                    b"" + payload
                )
                return
            answer = COMPLETION_BEFORE + completion_id + COMPLETION_AFTER
            self._send(b"200 OK", answer, request_id, keep)
        elif method == "GET" and path.endswith("/models"):
            self._send(b"200 OK", MODELS_BODY, request_id, keep)
        else:
            self._send(b"404 Not Found", NOT_FOUND, request_id, keep)

    def _send(self, status: bytes, body: bytes, request_id: bytes, keep: bytes) -> None:
        self.transport.write(
            b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\ncontent-length: "
            b""
            + str(len(body)).encode()
            + b"\r\nx-request-id: "
            + request_id
            + b"\r\nconnection: "
            + keep
            + b"\r\n\r\n"
            b"" + body
        )


def _dechunk(buffer: bytearray, start: int) -> tuple[bytes | None, int]:
    """A chunked request body from `buffer[start:]`: (body, bytes consumed), or (None, 0) if
    it is incomplete."""
    body = bytearray()
    position = start
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None, 0
        size = int(bytes(buffer[position:line_end]).split(b";")[0], 16)
        position = line_end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n\r\n", position - 2)
            if trailer_end < 0:
                return None, 0
            return bytes(body), trailer_end + 4
        if len(buffer) < position + size + 2:
            return None, 0
        body += buffer[position : position + size]
        position += size + 2


async def serve(host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(UpstreamProtocol, host, port, backlog=4096, reuse_address=True)
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    print(f"fake upstream on http://{host}:{port}/v1 (pid {os.getpid()})", flush=True)
    async with server:
        await stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.run(serve(args.host, args.port))
    except ImportError:
        asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
