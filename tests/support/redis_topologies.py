"""A Redis Cluster of three masters and a Sentinel-managed primary with a replica, as local
`redis-server` processes on free loopback ports, for the tests of `redis+cluster://` and
`redis+sentinel://` REDIS_URLs. Each waits, with a deadline, until it is ready, and stops every
process it started by PID."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis

from tests.support.live_server import free_port
from tests.support.redis_process import RedisProcess

SERVICE = "aigw"


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition` every 20 ms until it is true; RuntimeError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} within {timeout} s")
        time.sleep(0.02)


class LocalRedisCluster:
    """Three cluster-enabled masters, no replicas, every slot covered; `url` is their
    `redis+cluster://` REDIS_URL and `nodes` their processes."""

    def __init__(self, directory: Path) -> None:
        self.nodes: list[RedisProcess] = []
        try:
            for _ in range(3):
                node_dir = directory / f"node-{len(self.nodes)}"
                node_dir.mkdir(parents=True)
                # The cluster bus gets a free port of its own (the default, port + 10000, may not be).
                arguments = ("--cluster-enabled", "yes", "--cluster-config-file", str(node_dir / "nodes.conf"))
                self.nodes.append(RedisProcess(node_dir, (*arguments, "--cluster-port", str(free_port()))))
            addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
            subprocess.run(
                ["redis-cli", "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
                check=True,
                capture_output=True,
                timeout=30,
            )
            for node in self.nodes:
                client = redis.Redis(port=node.port)
                wait_until(
                    lambda client=client: client.execute_command("CLUSTER INFO").get("cluster_state") == "ok",
                    20,
                    "the cluster was not ok",
                )
                client.close()
        except BaseException:
            self.stop()
            raise
        self.url = "redis+cluster://" + ",".join(addresses)

    def stop(self) -> None:
        """Stop every node (SIGKILL by PID)."""
        for node in self.nodes:
            node.stop()


class LocalSentinels:
    """A primary, one replica of it, and three Sentinels (quorum 2) monitoring the primary as
    `SERVICE`, with a failover about a second after the primary stops answering; `url` is their
    `redis+sentinel://…/aigw/0` REDIS_URL. `kill_primary()` SIGKILLs the primary and waits until
    the Sentinels name the replica as primary."""

    def __init__(self, directory: Path) -> None:
        self.processes: list[RedisProcess] = []
        try:
            (directory / "primary").mkdir(parents=True)
            self.primary = self._start(RedisProcess(directory / "primary"))
            (directory / "replica").mkdir()
            replica_of = ("--replicaof", "127.0.0.1", str(self.primary.port))
            self.replica = self._start(RedisProcess(directory / "replica", replica_of))
            self.sentinels = [self._sentinel(directory / f"sentinel-{n}") for n in range(3)]
            client = redis.Redis(port=self.replica.port)
            wait_until(
                lambda: client.info("replication").get("master_link_status") == "up",
                20,
                "the replica did not sync",
            )
            client.close()
            for sentinel in self.sentinels:  # every Sentinel knows the replica and the two others
                client = redis.Redis(port=sentinel.port)
                wait_until(
                    lambda client=client: (
                        len(client.execute_command("SENTINEL", "REPLICAS", SERVICE)) == 1
                        and len(client.execute_command("SENTINEL", "SENTINELS", SERVICE)) == 2
                    ),
                    20,
                    "the Sentinels did not find the replica and each other",
                )
                client.close()
        except BaseException:
            self.stop()
            raise
        hosts = ",".join(f"127.0.0.1:{sentinel.port}" for sentinel in self.sentinels)
        self.url = f"redis+sentinel://{hosts}/{SERVICE}/0"

    def _start(self, process: RedisProcess) -> RedisProcess:
        self.processes.append(process)
        return process

    def _sentinel(self, directory: Path) -> RedisProcess:
        directory.mkdir()
        config = directory / "sentinel.conf"  # the Sentinel rewrites it: one of its own
        config.write_text(
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary.port} 2\n"
            f"sentinel down-after-milliseconds {SERVICE} 400\n"
            f"sentinel failover-timeout {SERVICE} 2000\n"
            f"sentinel parallel-syncs {SERVICE} 1\n"
        )
        return self._start(RedisProcess(directory, ("--sentinel",), config=config))

    def primary_port(self) -> int:
        """The port the Sentinels name for the primary now."""
        client = redis.Redis(port=self.sentinels[0].port)
        try:
            _, port = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
        finally:
            client.close()
        return int(port)

    def kill_primary(self, timeout: float = 20) -> None:
        """SIGKILL the primary (by PID, as a crash does) and wait until the replica is promoted and
        every Sentinel names it."""
        self.primary.kill()

        def promoted() -> bool:
            for sentinel in self.sentinels:
                client = redis.Redis(port=sentinel.port)
                try:
                    _, port = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
                finally:
                    client.close()
                if int(port) != self.replica.port:
                    return False
            role = redis.Redis(port=self.replica.port)
            try:
                return role.execute_command("ROLE")[0] == b"master"
            finally:
                role.close()

        wait_until(promoted, timeout, "the Sentinels did not promote the replica")

    def stop(self) -> None:
        """Stop every process (SIGKILL by PID)."""
        for process in self.processes:
            process.stop()
