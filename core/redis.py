"""The one way aigw connects to Redis: the data plane (asyncio), config-version bumps and jobs
(synchronous) all get their client here, from `REDIS_URL`.

Three forms of URL (docs/operations.md, "Redis"):

- `redis://[user:password@]host:port/db`, `rediss://…` (TLS), `unix:///path.sock?db=N`: one
  server, as `redis.Redis.from_url` reads it (its query options apply too).
- `redis+cluster://[user:password@]host:port,host:port,…[/0]`: a Redis Cluster, reached through
  any of the listed startup nodes (the client learns the others from the cluster). A cluster has
  only database 0. Every key that one command or Lua script touches must be in one hash slot:
  aigw's keys carry the resource group's hash tag (`quotas.counters.counter_name`).
- `redis+sentinel://[user:password@]host:port,host:port,…/service[/db]`: the primary that the
  listed Sentinels (port 26379 unless given) monitor as `service`; after a failover the client
  asks them again and follows the new primary. The user and password are the data nodes';
  the Sentinels are asked without a password.

Every client retries a command that meets a dead connection twice, on a fresh one, 10 then 20 ms
later (a restarted Redis, a stale pooled connection, a Sentinel that already points at the new
primary), and waits at most 1 s to connect and 1 s for each answer, so an unreachable Redis
costs a request about a second and then a 503, never a hang.

Errors: `parse_redis_url` (and so every client function) raises `RedisUrlError`, a Django
`ImproperlyConfigured`, naming what is wrong with the URL, never repeating its password.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.sentinel
import redis.cluster
import redis.sentinel
from django.core.exceptions import ImproperlyConfigured
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry

SINGLE, CLUSTER, SENTINEL = "single", "cluster", "sentinel"
# What a client raises when Redis cannot be reached or cannot answer (a Cluster's client raises
# the last two, which are not RedisErrors, when no node answers for a slot).
REDIS_ERRORS: tuple[type[Exception], ...] = (
    redis.RedisError,
    redis.exceptions.RedisClusterUnreachableError,
    redis.exceptions.SlotNotCoveredError,
)
TIMEOUT_SECONDS = 1.0
RETRIES = 2
_PLAIN_SCHEMES = ("redis", "rediss", "unix")
_DEFAULT_PORT = {CLUSTER: 6379, SENTINEL: 26379}


class RedisUrlError(ImproperlyConfigured):
    """A `REDIS_URL` (or another Redis URL) that aigw cannot use; the message says why."""


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """What a Redis URL points at.

    `kind`: `single`, `cluster` or `sentinel`; `url`: the URL as given (for `single`, what
    `redis.Redis.from_url` reads); `nodes`: (host, port) of the cluster's startup nodes or of the
    Sentinels (empty for `single`); `service_name`: the Sentinel service (`""` otherwise);
    `db`: the database number of a Sentinel-managed primary (0 otherwise); `username`,
    `password`: of the data nodes (None when the URL has none; for `single` they stay in `url`).
    """

    kind: str
    url: str
    nodes: tuple[tuple[str, int], ...] = ()
    service_name: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None


def _shown(url: str) -> str:
    """`url` with its password replaced by `***`, for error messages."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, hosts = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}{sep}{userinfo.split(':', 1)[0]}:***@{hosts}"


def _node(text: str, default_port: int, url: str) -> tuple[str, int]:
    """`host:port`, `host` or `[v6 address]:port` → (host, port)."""
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise RedisUrlError(f"Redis URL {_shown(url)}: {text!r} is not host:port ([address]:port for IPv6)")
        port_text = rest[1:]
    else:
        host, _, port_text = text.partition(":")
        if ":" in port_text:
            raise RedisUrlError(f"Redis URL {_shown(url)}: write the IPv6 address {text!r} as [address]:port")
    if not host:
        raise RedisUrlError(f"Redis URL {_shown(url)}: a node has no host ({text!r})")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise RedisUrlError(f"Redis URL {_shown(url)}: {port_text!r} is not a port number (1-65535)")
    return host, int(port_text)


def parse_redis_url(url: str) -> RedisTarget:
    """Read a Redis URL of one of the three forms in the module docstring.

    Raises:
        RedisUrlError: for an empty URL, an unknown scheme (`redis+cluster`, `redis+sentinel`,
            `redis`, `rediss`, `unix` are known), a database that is not a number, a node that is
            not host:port, a cluster URL with
            a database other than 0, a Sentinel URL without a service name or with a database
            that is not a number, query options on a cluster or Sentinel URL (not supported), or a
            single-server URL that redis-py cannot read.
    """
    if not url:
        raise RedisUrlError("the Redis URL is empty")
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise RedisUrlError(f"Redis URL {_shown(url)}: it has no scheme (e.g. redis://host:6379/0)")
    scheme = scheme.lower()
    if scheme in _PLAIN_SCHEMES:
        try:
            redis.connection.parse_url(url)
        except ValueError as exc:
            raise RedisUrlError(f"Redis URL {_shown(url)}: {exc}") from None
        path = rest.partition("?")[0].partition("/")[2].strip("/")
        if scheme != "unix" and path and not path.isdigit():  # redis-py would quietly use database 0
            raise RedisUrlError(f"Redis URL {_shown(url)}: the database after the host must be a number, not {path!r}")
        return RedisTarget(kind=SINGLE, url=url)
    kinds = {"redis+cluster": CLUSTER, "redis+sentinel": SENTINEL}
    if scheme not in kinds:
        raise RedisUrlError(
            f"Redis URL {_shown(url)}: unknown scheme {scheme!r}; use redis://, rediss://, unix://, "
            "redis+cluster://host:port,host:port or redis+sentinel://host:port,host:port/service"
        )
    kind = kinds[scheme]
    if "?" in rest or "#" in rest:
        raise RedisUrlError(f"Redis URL {_shown(url)}: a {scheme}:// URL takes no query options")
    netloc, _, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    if not hosts:
        raise RedisUrlError(f"Redis URL {_shown(url)}: it names no host")
    nodes = tuple(_node(text, _DEFAULT_PORT[kind], url) for text in hosts.split(","))
    parts = [part for part in path.split("/") if part]
    if kind == CLUSTER:
        if parts not in ([], ["0"]):
            raise RedisUrlError(f"Redis URL {_shown(url)}: a Redis Cluster has only database 0, not /{'/'.join(parts)}")
        return RedisTarget(kind=kind, url=url, nodes=nodes, username=username, password=password)
    if not parts:
        raise RedisUrlError(
            f"Redis URL {_shown(url)}: name the Sentinel service after the hosts, e.g. "
            "redis+sentinel://host:26379,host:26380/mymaster"
        )
    if len(parts) > 2 or (len(parts) == 2 and not parts[1].isdigit()):
        raise RedisUrlError(
            f"Redis URL {_shown(url)}: after the hosts come the service name and an optional database "
            f"number (/service/db), not /{'/'.join(parts)}"
        )
    db = int(parts[1]) if len(parts) == 2 else 0
    return RedisTarget(
        kind=kind, url=url, nodes=nodes, service_name=unquote(parts[0]), db=db, username=username, password=password
    )


def _backoff(retries: int) -> Any:
    return ExponentialBackoff(cap=0.1, base=0.01) if retries else NoBackoff()


def _options(retry: Any) -> dict[str, Any]:
    return {"retry": retry, "socket_connect_timeout": TIMEOUT_SECONDS, "socket_timeout": TIMEOUT_SECONDS}


def _credentials(target: RedisTarget) -> dict[str, Any]:
    return {"username": target.username, "password": target.password}


def async_client(url: str, *, retries: int = RETRIES) -> Any:
    """An asyncio client (`redis.asyncio.Redis`, or `redis.asyncio.cluster.RedisCluster`) for
    `url`, with the retries and timeouts of the module docstring (`retries` 0: one try).

    Raises:
        RedisUrlError: see `parse_redis_url`.
    """
    target = parse_redis_url(url)
    retry = AsyncRetry(_backoff(retries), retries=retries)
    if target.kind == SINGLE:
        return redis.asyncio.from_url(url, **_options(retry))
    if target.kind == CLUSTER:
        return redis.asyncio.cluster.RedisCluster(
            startup_nodes=[redis.asyncio.cluster.ClusterNode(host, port) for host, port in target.nodes],
            **_credentials(target),
            **_options(retry),
        )
    sentinel = redis.asyncio.sentinel.Sentinel(
        list(target.nodes),
        sentinel_kwargs={"socket_connect_timeout": TIMEOUT_SECONDS, "socket_timeout": TIMEOUT_SECONDS},
    )
    return sentinel.master_for(target.service_name, db=target.db, **_credentials(target), **_options(retry))


def sync_client(url: str, *, retries: int = RETRIES) -> Any:
    """A synchronous client (`redis.Redis`, or `redis.cluster.RedisCluster`) for `url`, like
    `async_client`: for config-version bumps (`core.freshness`, `retries=0`) and jobs.

    Raises:
        RedisUrlError: see `parse_redis_url`.
    """
    target = parse_redis_url(url)
    retry = Retry(_backoff(retries), retries=retries)
    if target.kind == SINGLE:
        return redis.Redis.from_url(url, **_options(retry))
    if target.kind == CLUSTER:
        return redis.cluster.RedisCluster(
            startup_nodes=[redis.cluster.ClusterNode(host, port) for host, port in target.nodes],
            **_credentials(target),
            **_options(retry),
        )
    sentinel = redis.sentinel.Sentinel(
        list(target.nodes),
        sentinel_kwargs={"socket_connect_timeout": TIMEOUT_SECONDS, "socket_timeout": TIMEOUT_SECONDS},
    )
    return sentinel.master_for(target.service_name, db=target.db, **_credentials(target), **_options(retry))


def is_cluster(client: Any) -> bool:
    """Whether `client` (from `async_client` or `sync_client`) talks to a Redis Cluster, where
    one command may touch the keys of one hash slot only."""
    return isinstance(client, redis.asyncio.cluster.RedisCluster | redis.cluster.RedisCluster)


def hash_tag(name: str) -> str:
    """The `{…}` hash tag of a key name as Redis Cluster reads it ("" if it has none): the part
    between the first `{` and the first `}` after it, when not empty. Keys with the same tag
    share a slot."""
    start = name.find("{")
    end = name.find("}", start + 1) if start != -1 else -1
    return name[start : end + 1] if end > start + 1 else ""


def celery_broker(url: str) -> tuple[str, dict[str, Any]]:
    """Celery's broker URL and transport options for `REDIS_URL` = `url`, when
    `CELERY_BROKER_URL` is not set: a single server is used as it is; a Sentinel-managed primary
    becomes kombu's form, `sentinel://host:port;sentinel://host:port/db` with the transport
    option `master_name` (the user and password go to the primary, as in `REDIS_URL`).

    Raises:
        RedisUrlError: for a Redis Cluster, which kombu cannot use as a broker (CELERY_BROKER_URL
            must then name a single server or Sentinels), or a URL `parse_redis_url` refuses.
    """
    target = parse_redis_url(url)
    if target.kind == SINGLE:
        return url, {}
    if target.kind == CLUSTER:
        raise RedisUrlError(
            "REDIS_URL is a Redis Cluster, which Celery's broker (kombu) cannot use: set CELERY_BROKER_URL to a "
            "single server (redis://host:6379/0) or to Sentinels (sentinel://host:26379;sentinel://host:26380/0 "
            "with AIGW_CELERY_SENTINEL_MASTER)"
        )
    auth = ""
    if target.username or target.password:
        from urllib.parse import quote

        auth = f"{quote(target.username or '', safe='')}:{quote(target.password or '', safe='')}@"
    hosts = ";".join(f"sentinel://{auth}{_host(host)}:{port}/{target.db}" for host, port in target.nodes)
    return hosts, {"master_name": target.service_name}


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
