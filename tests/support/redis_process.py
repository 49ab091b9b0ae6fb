"""A `redis-server` of the test's own on a free loopback port, that the test can kill and restart."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis

from tests.support.live_server import free_port


class RedisProcess:
    """`redis-server` on 127.0.0.1:`port` with no persistence; `url` is its REDIS_URL. `kill()`
    stops it with SIGKILL (by PID, as a crash does) and `start()` starts a fresh, empty one on the
    same port. `arguments`: more command-line options (e.g. `--replicaof 127.0.0.1 6379`, or a
    cluster node's); `config`: a configuration file to start from (a Sentinel's, with
    `--sentinel` in `arguments`)."""

    def __init__(self, directory: Path, arguments: tuple[str, ...] = (), config: Path | None = None) -> None:
        self.binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.directory = directory
        self.arguments = arguments
        self.config = config
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        self.process = subprocess.Popen(
            [
                self.binary,
                *([str(self.config)] if self.config else []),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                *self.arguments,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.02)
        client.close()

    def kill(self) -> None:
        """SIGKILL the server and wait until it is gone."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None

    def stop(self) -> None:
        """Stop the server for good."""
        self.kill()
