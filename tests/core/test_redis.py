"""REDIS_URL in its three forms (core.redis): one server, a Redis Cluster, a Sentinel-managed
primary; a URL aigw cannot use is refused at start-up with a message that names the problem and
never repeats the password."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from core.redis import CLUSTER, SENTINEL, SINGLE, RedisTarget, celery_broker, parse_redis_url
from tests.support.live_server import ROOT


@pytest.mark.parametrize(
    "url",
    ["redis://127.0.0.1:6379/0", "rediss://user:secret@cache.example:6380/2", "unix:///run/redis.sock?db=3"],
)
def test_a_single_server_url_is_used_as_it_is(url):
    assert parse_redis_url(url) == RedisTarget(kind=SINGLE, url=url)


def test_a_cluster_url_names_its_startup_nodes_with_the_default_port_and_ipv6_addresses():
    url = "redis+cluster://app:p%40ss@10.0.0.1:7000,10.0.0.2,[::1]:7002/0"
    assert parse_redis_url(url) == RedisTarget(
        kind=CLUSTER,
        url=url,
        nodes=(("10.0.0.1", 7000), ("10.0.0.2", 6379), ("::1", 7002)),
        username="app",
        password="p@ss",
    )


def test_a_sentinel_url_names_the_sentinels_the_service_and_the_database():
    url = "redis+sentinel://:secret@s1:26380,s2/mymaster/4"
    assert parse_redis_url(url) == RedisTarget(
        kind=SENTINEL,
        url=url,
        nodes=(("s1", 26380), ("s2", 26379)),
        service_name="mymaster",
        db=4,
        username=None,
        password="secret",
    )
    assert parse_redis_url("redis+sentinel://s1:26379/mymaster").db == 0


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("", "the Redis URL is empty"),
        ("127.0.0.1:6379", "it has no scheme"),
        ("memcached://cache:11211", "unknown scheme 'memcached'"),
        ("redis+cluster://a:7000,b:7001/3", "a Redis Cluster has only database 0, not /3"),
        ("redis+cluster://a:7000?timeout=3", "takes no query options"),
        ("redis+cluster:///0", "it names no host"),
        ("redis+cluster://a:7000,:7001", "a node has no host"),
        ("redis+cluster://a:seventy", "'seventy' is not a port number"),
        ("redis+cluster://a:70000", "'70000' is not a port number"),
        ("redis+cluster://::1:7000", "write the IPv6 address"),
        ("redis+sentinel://s1:26379,s2:26379", "name the Sentinel service after the hosts"),
        ("redis+sentinel://s1:26379/mymaster/one", "the service name and an optional database number"),
        ("redis+sentinel://s1:26379/mymaster/0/extra", "the service name and an optional database number"),
        ("redis://127.0.0.1:6379/zero", "the database after the host must be a number, not 'zero'"),
        ("redis://127.0.0.1:port/0", "Port could not be cast to integer value as 'port'"),
    ],
)
def test_a_url_that_cannot_be_used_is_refused_naming_the_problem(url, problem):
    with pytest.raises(ImproperlyConfigured) as refused:
        parse_redis_url(url)
    assert problem in str(refused.value)


def test_the_refusal_never_repeats_the_password():
    with pytest.raises(ImproperlyConfigured) as refused:
        parse_redis_url("redis+cluster://app:hunter2@a:7000/5")
    assert "hunter2" not in str(refused.value) and "app:***@a:7000" in str(refused.value)


def test_celery_follows_a_sentinel_redis_url_in_kombus_form_and_refuses_a_cluster():
    assert celery_broker("redis://r:6379/1") == ("redis://r:6379/1", {})
    assert celery_broker("redis+sentinel://:pw@s1:26379,s2:26380/mymaster/2") == (
        "sentinel://:pw@s1:26379/2;sentinel://:pw@s2:26380/2",
        {"master_name": "mymaster"},
    )
    with pytest.raises(ImproperlyConfigured, match="Celery's broker .* cannot use: set CELERY_BROKER_URL"):
        celery_broker("redis+cluster://a:7000,b:7001")


def test_the_settings_refuse_a_bad_redis_url_at_start_up():
    started = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={"DJANGO_SETTINGS_MODULE": "config.settings", "REDIS_URL": "redis+sentinel://s1:26379", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode != 0
    assert "RedisUrlError: Redis URL redis+sentinel://s1:26379: name the Sentinel service" in started.stderr
