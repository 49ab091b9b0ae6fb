#!/usr/bin/env python3
"""An open-loop HTTP load client for the data-plane benchmark (`bench/dataplane.py`).

Sends one POST every 1/RATE seconds for SECONDS seconds, at fixed times that do not depend on
the answers (a slow answer does not delay the next request: a request that finds no idle
connection opens a new one), over a pool of raw HTTP/1.1 keep-alive connections (asyncio, uvloop
when installed, so the client itself adds little). Each request's latency is timed from just
before its bytes are written to the end of its answer's body, in ms. Prints one JSON object:
`latencies_ms` (one per request, in send order), `errors`, `sent`, `max_lateness_ms` (how late
the most delayed send was against its schedule) and `connections` (opened in all).

    python bench/open_loop.py --url http://127.0.0.1:8000/v1/chat/completions --rate 50 \
        --seconds 10 --header 'authorization: Bearer …' --body '{"model": …}'

With `--each-key FILE` it is a closed loop instead: CONCURRENCY connections send one request
with each secret of FILE (one a line) as its bearer key, each at most once, in order, for at most
MAX_SECONDS, and it prints `answered`, `seconds` and `errors` (the cold pass of the key scaling:
every key's first use).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import urlsplit

WARMUP_REQUESTS = 20  # sequential requests before measuring (not timed): connections, caches
# A connection idle longer than this is closed rather than reused: servers close idle keep-alive
# connections (uvicorn after 5 s), and a request written into one that the server is closing
# would fail through no fault of the server.
MAX_IDLE_SECONDS = 1.0


class Connection:
    """One keep-alive connection: write a request, read its whole answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = time.monotonic()

    async def exchange(self, request: bytes) -> int:
        """Send `request`, read the answer to its end; returns the HTTP status."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length, chunked, close = None, False, False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value.strip())
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            elif name == "connection" and value.strip().lower() == "close":
                close = True
        if chunked:
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
                if size == 0:
                    while (await self.reader.readuntil(b"\r\n")) != b"\r\n":
                        pass  # trailers
                    break
                await self.reader.readexactly(size + 2)
        elif length is not None:
            await self.reader.readexactly(length)
        else:
            await self.reader.read()
            close = True
        if close:
            raise ConnectionResetError("server closed the connection")
        return status

    def close(self) -> None:
        self.writer.close()


async def run(url: str, headers: list[str], body: bytes, rate: float, seconds: float) -> dict:
    """Run the open loop; returns the JSON-able result (latencies in ms)."""
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or 80
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    request = _request(host, port, path, headers, body)
    idle: list[Connection] = []
    opened = 0
    latencies: list[float | None] = []
    errors: list[str] = []
    loop = asyncio.get_running_loop()

    async def connection() -> Connection:
        nonlocal opened
        while idle:
            conn = idle.pop()
            if time.monotonic() - conn.idle_since < MAX_IDLE_SECONDS:
                return conn
            conn.close()
        reader, writer = await asyncio.open_connection(host, port)
        opened += 1
        return Connection(reader, writer)

    async def one(index: int | None) -> None:
        conn = await connection()
        started = time.perf_counter()
        try:
            status = await conn.exchange(request)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            conn.close()
            return
        elapsed = (time.perf_counter() - started) * 1000
        conn.idle_since = time.monotonic()
        idle.append(conn)
        if status != 200:
            errors.append(f"HTTP {status}")
        elif index is not None:
            latencies[index] = elapsed

    for _ in range(WARMUP_REQUESTS):
        await one(None)
    count = int(rate * seconds)
    latencies = [None] * count
    tasks = []
    max_lateness = 0.0
    start = loop.time() + 0.05
    for index in range(count):
        due = start + index / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        max_lateness = max(max_lateness, loop.time() - due)
        tasks.append(loop.create_task(one(index)))
    await asyncio.gather(*tasks)
    for conn in idle:
        conn.close()
    return {
        "sent": count,
        "warmup": WARMUP_REQUESTS,
        "latencies_ms": [value for value in latencies if value is not None],
        "errors": errors,
        "max_lateness_ms": max_lateness * 1000,
        "connections": opened,
    }


def _request(host: str, port: int, path: str, headers: list[str], body: bytes) -> bytes:
    head = [f"POST {path} HTTP/1.1", f"host: {host}:{port}", "content-type: application/json", *headers]
    head.append(f"content-length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def each_key(url: str, secrets: list[str], body: bytes, concurrency: int, max_seconds: float) -> dict:
    """One request per secret (as `authorization: Bearer <secret>`), in the file's order,
    `concurrency` at a time, each on its own keep-alive connection, until every secret was used
    or `max_seconds` have passed; returns answered, seconds (wall time) and errors. The secrets
    used are the first `answered` + len(errors) of the list."""
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or 80
    pending = list(reversed(secrets))
    errors: list[str] = []
    answered = 0

    async def worker() -> None:
        nonlocal answered
        reader, writer = await asyncio.open_connection(host, port)
        conn = Connection(reader, writer)
        while pending and time.perf_counter() < deadline:
            secret = pending.pop()
            request = _request(host, port, parts.path, [f"authorization: Bearer {secret}"], body)
            try:
                status = await conn.exchange(request)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                conn.close()
                reader, writer = await asyncio.open_connection(host, port)
                conn = Connection(reader, writer)
                continue
            if status == 200:
                answered += 1
            else:
                errors.append(f"HTTP {status}")
        conn.close()

    started = time.perf_counter()
    deadline = started + max_seconds
    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(secrets)))))
    return {"answered": answered, "seconds": time.perf_counter() - started, "errors": errors[:20]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--rate", type=float, default=50.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--header", action="append", default=[], help="'name: value', repeatable")
    parser.add_argument("--body", required=True, help="the JSON body")
    parser.add_argument("--each-key", help="a file of secrets: one request with each, closed loop")
    parser.add_argument("--concurrency", type=int, default=32, help="connections, with --each-key")
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="time budget, with --each-key")
    args = parser.parse_args()
    if args.each_key:
        with open(args.each_key) as file:
            secrets = file.read().split()
        coroutine = each_key(args.url, secrets, args.body.encode(), args.concurrency, args.max_seconds)
    else:
        coroutine = run(args.url, args.header, args.body.encode(), args.rate, args.seconds)
    try:
        import uvloop

        result = uvloop.run(coroutine)
    except ImportError:
        result = asyncio.run(coroutine)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
