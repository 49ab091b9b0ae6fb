#!/usr/bin/env python3
"""The data-plane benchmark: aigw side by side with LiteLLM Proxy, in one run, on this machine.

One command starts a fake OpenAI upstream (`bench/fake_upstream.py`), then measures, one target
at a time: the upstream directly, aigw with 1 and 2 workers (PostgreSQL + Redis, a key with a soft
spend budget, a token quota, TPM and RPM, none of them reached) and LiteLLM Proxy with 1 and 2
workers (master-key mode, no database, no callbacks). For each target:
- saturation: `wrk -t1 -c32` non-streaming POSTs for DURATION s → req/s;
- open loop: RATE req/s for DURATION s from `bench/open_loop.py` (its own process) → latency
  p50/p99 in ms, reported as added latency = the target's percentile − the upstream's;
- streaming: `wrk -t1 -c16` with `"stream": true` bodies for DURATION s → streams/s;
- RSS per worker process after the run (VmRSS, MB = 2^20 bytes).
Pinning on the 2 cores: the upstream, wrk and the open-loop client on cpu 0; a 1-worker gateway
on cpu 1, a 2-worker gateway on cpus 0-1.

Checks (a failed check is printed at once and makes the command exit 1 at the end): wrk saw no
non-2xx answer and no socket error; aigw wrote exactly one usage event per request (events counted
in PostgreSQL before and after each run and compared with wrk's count of answers: requests that
wrk cut off at the end may still be served, so up to one per connection more is allowed and the
difference reported; the open loop waits for every answer, so there it must match exactly); every
sampled stream that asked for `stream_options.include_usage` ends with its usage chunk, then
`[DONE]` (and aigw stored one `stream=true` event for each).

Then the key scaling of aigw (1 worker): 1, 1,000 and 50,000 distinct keys in rotation (a wrk Lua
script picks each request's key round-robin) × 0, 1 and 12 limits per key (12 = key, gateway and
group × token quota, spend budget, TPM and RPM, soft, none reached); each set of keys is first
used once (the cold pass, whose rate is reported too), then measured warm.

    .venv/bin/python bench/dataplane.py [--quick] [--json results.json]

`--quick` runs 5 s scenarios and skips the key scaling. LiteLLM is installed into its own venv
(`--litellm-venv`, default /work/litellm-venv) when it is not there. The bench recreates the
PostgreSQL database `aigw_bench_dp` (`--database-url`) and uses Redis db 5 under its own prefix.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"

LITELLM_VERSION = "1.106.2"
DEFAULT_LITELLM_VENV = Path("/work/litellm-venv")
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/aigw_bench_dp"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/5"
REDIS_PREFIX = "aigwbenchdp"
MODEL = "bench-model"  # the model name clients ask both gateways for
UPSTREAM_MODEL = "gpt-4o-mini"  # what both gateways send upstream (priced by both)
SATURATION_CONNECTIONS = 32
STREAM_CONNECTIONS = 16
STREAM_SAMPLES = 20
KEY_COUNTS = (1, 1_000, 50_000)
LIMITS_PER_KEY = (0, 1, 12)
UPSTREAM_CPUS = "0"
CLIENT_CPUS = "0"
LOCK_PATH = Path("/tmp/aigw-bench-dataplane.lock")
LATE_CLIENT_MS = 10  # an open-loop send later than this (ms) means the client was starved of CPU


def aigw_command(workers: int, port: int) -> list[str]:
    """The command that serves aigw's ASGI app with `workers` processes on 127.0.0.1:`port`.

    Change the server here (granian, uvicorn's `--loop uvloop --http httptools`…): every aigw
    target of this bench starts through this function."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "config.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--no-access-log",
    ]


def litellm_command(venv: Path, config: Path, workers: int, port: int) -> list[str]:
    """LiteLLM Proxy's own CLI serving `config` with `workers` processes on 127.0.0.1:`port`."""
    return [
        str(venv / "bin" / "litellm"),
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        str(workers),
    ]


def litellm_env() -> dict[str, str]:
    """LiteLLM's environment: the packaged model cost map (no fetch), errors-only logging (which
    also turns off uvicorn's access log), production mode (no .env loading), and none of aigw's
    variables (no DATABASE_URL: LiteLLM would try to use it)."""
    return {
        **clean_env(),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "LITELLM_MODE": "PRODUCTION",
    }


def clean_env() -> dict[str, str]:
    """os.environ without the variables of aigw and Django."""
    drop = ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "SECRET_KEY", "LOG_LEVEL")
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("AIGW_")}


# --- processes -------------------------------------------------------------------------------


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _proc_children(pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            children += [int(c) for c in (task / "children").read_text().split()]
    return children


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def rss_mb(pid: int) -> float:
    """VmRSS of process `pid` in MB (2^20 bytes); 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far, in s."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of `pid` and all its descendants still running, in s."""
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += cpu_seconds(current)
        todo += _proc_children(current)
    return total


def _busy_seconds() -> float:
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _service_seconds() -> float:
    """CPU time of the running PostgreSQL and Redis server processes, in s."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                comm = (entry / "comm").read_text().strip()
            except OSError:
                continue
            if comm.startswith(("postgres", "redis-server")):
                total += cpu_seconds(int(entry.name))
    return total


class CpuMeter:
    """Where the machine's CPU went during one measurement, in cores (CPU s per wall s): the
    gateway, the bench's own load (upstream, wrk, open-loop client), PostgreSQL + Redis (which
    other users of this machine may share), and everything else: other people's work."""

    def __init__(self, gateway_pid: int | None, bench_pids: list[int]) -> None:
        self.gateway_pid = gateway_pid
        self.bench_pids = bench_pids

    def _sample(self) -> tuple[float, ...]:
        children = os.times()
        return (
            time.monotonic(),
            _busy_seconds(),
            tree_cpu_seconds(self.gateway_pid) if self.gateway_pid else 0.0,
            sum(tree_cpu_seconds(p) for p in self.bench_pids) + children.children_user + children.children_system,
            _service_seconds(),
        )

    def __enter__(self) -> CpuMeter:
        self.before = self._sample()
        return self

    def __exit__(self, *exc) -> None:
        after = self._sample()
        wall, busy, gateway, bench, services = (after[i] - self.before[i] for i in range(5))
        self.cores = {
            "busy": busy / wall,
            "gateway": gateway / wall,
            "bench_load": bench / wall,
            "postgres_redis": services / wall,
            "other": max(0.0, busy - gateway - bench - services) / wall,
        }


class Server:
    """A server process started by this bench, pinned with taskset, in its own session (so that
    stop() also reaches any process it left behind). Output goes to `log_path`."""

    def __init__(self, name: str, command: list[str], *, cpus: str, env: dict, log_dir: Path, cwd: Path = ROOT):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            ["taskset", "-c", cpus, *command],
            cwd=cwd,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self.process.pid
        self._seen: set[int] = {self.pid}

    def workers(self) -> list[int]:
        """The worker processes: uvicorn's (multiprocessing spawn) children when it has any,
        else the process itself."""
        children = [c for c in _proc_children(self.pid) if "spawn_main" in _cmdline(c)]
        self._seen.update(_proc_children(self.pid))
        return children or [self.pid]

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def wait_workers(self, count: int, timeout: float = 120) -> list[int]:
        """Wait until `count` workers exist and each has gone idle (done importing), at most
        `timeout` s; returns their pids."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            pids = self.workers()
            if len(pids) == count:
                before = {p: cpu_seconds(p) for p in pids}
                time.sleep(1.0)
                if all(cpu_seconds(p) - before[p] < 0.1 for p in pids):
                    return pids
            else:
                time.sleep(0.3)
        raise RuntimeError(f"{self.name}: {count} idle workers not seen in {timeout:.0f} s\n{self.log_tail()}")

    def _check_alive(self) -> None:
        if not self.alive():
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 20 s; then SIGKILL any process of its session still there."""
        self._seen.update(_proc_children(self.pid))
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        for pid in self._seen - {self.pid}:
            try:
                if os.getsid(pid) == self.pid:  # still ours (pids are not reused this fast, but check)
                    os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self._log.close()


def wait_answers(url: str, headers: dict, body: dict, server: Server | None, timeout: float = 120) -> None:
    """Wait until a POST of `body` to `url` answers 200, at most `timeout` s."""
    import httpx

    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if server is not None:
            server._check_alive()
        try:
            response = httpx.post(url, json=body, headers=headers, timeout=10)
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}: {response.text[:500]}"
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.5)
    tail = server.log_tail() if server else ""
    raise RuntimeError(f"{url} did not answer 200 in {timeout:.0f} s (last: {last})\n{tail}")


# --- wrk -------------------------------------------------------------------------------------


@dataclass
class WrkResult:
    """One wrk run: answers counted by wrk, duration (s), rate (req/s), errors seen."""

    responses: int
    seconds: float
    rate: float
    errors: list[str] = field(default_factory=list)
    output: str = ""
    cpu_cores: dict = field(default_factory=dict)


def _lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal for our ASCII bodies


def wrk_script(path: Path, body: dict, auth: str | None = None, keys_file: Path | None = None) -> Path:
    """Write a wrk Lua script POSTing `body`: with one static `auth` header, or with the keys of
    `keys_file` (one secret a line) in rotation, round-robin."""
    lines = ['wrk.method = "POST"', f"wrk.body = {_lua_string(json.dumps(body))}"]
    lines.append('wrk.headers["Content-Type"] = "application/json"')
    if auth:
        lines.append(f'wrk.headers["Authorization"] = {_lua_string(auth)}')
    if keys_file is not None:
        lines += [
            "local keys = {}",
            f'for line in io.lines({_lua_string(str(keys_file))}) do keys[#keys + 1] = "Bearer " .. line end',
            "local i = 0",
            "request = function()",
            "  i = i % #keys + 1",
            '  wrk.headers["Authorization"] = keys[i]',
            "  return wrk.format()",
            "end",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_wrk(url: str, script: Path, connections: int, seconds: float, timeout_s: int = 5) -> WrkResult:
    """wrk -t1 pinned to cpu 0; errors are the non-2xx answers and socket errors it reports."""
    command = ["taskset", "-c", CLIENT_CPUS, "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s"]
    command += [f"--timeout={timeout_s}s", "-s", str(script), url]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
    text = out.stdout + out.stderr
    errors = []
    if out.returncode != 0:
        errors.append(f"wrk exited with {out.returncode}")
    match = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)\b", text)
    if not match:
        raise RuntimeError(f"cannot read wrk's output:\n{text}")
    responses = int(match.group(1))
    unit = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[match.group(3)]
    duration = float(match.group(2)) * unit
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if non2xx:
        errors.append(f"{non2xx.group(1)} non-2xx answers")
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if sockets and any(int(n) for n in sockets.groups()):
        errors.append(f"socket errors: {sockets.group(0)}")
    if responses == 0:
        errors.append("no answers")
    return WrkResult(responses, duration, rate, errors, text)


# --- LiteLLM ---------------------------------------------------------------------------------


def ensure_litellm(venv: Path) -> None:
    """Install `litellm[proxy]==LITELLM_VERSION` into `venv` (outside the repo) unless it is there."""
    python = venv / "bin" / "python"
    if python.exists():
        check = subprocess.run(
            [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
            capture_output=True,
            text=True,
        )
        if check.returncode == 0 and check.stdout.strip() == LITELLM_VERSION and (venv / "bin" / "litellm").exists():
            return
    say(f"installing litellm[proxy]=={LITELLM_VERSION} into {venv} (a few minutes)")
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", f"litellm[proxy]=={LITELLM_VERSION}"],
        check=True,
        env=clean_env(),
    )


def litellm_config(path: Path, upstream_port: int, master_key: str) -> Path:
    """LiteLLM's config: one model on the fake upstream, master-key auth, no callbacks, no DB."""
    path.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{UPSTREAM_MODEL}\n"
        f"      api_base: http://127.0.0.1:{upstream_port}/v1\n"
        "      api_key: fake-upstream-credential\n"
        "litellm_settings:\n"
        "  callbacks: []\n"
        "  success_callback: []\n"
        "  failure_callback: []\n"
        "  telemetry: false\n"
        "general_settings:\n"
        f"  master_key: {master_key}\n"
    )
    return path


# --- aigw's data -----------------------------------------------------------------------------


def prepare_database(database_url: str, env: dict) -> None:
    """Drop and recreate the bench's database, then migrate it (about 5 s)."""
    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    if name in ("aigw", "postgres", "") or not name.startswith("aigw_bench"):
        raise SystemExit(f"refusing to recreate database {name!r}: use one named aigw_bench…")
    connect = ["-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432), "-U", parts.username or "postgres"]
    subprocess.run(["dropdb", *connect, "--if-exists", "--force", name], check=True, env=clean_env())
    subprocess.run(["createdb", *connect, name], check=True, env=clean_env())
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)


def clear_redis(redis_url: str) -> int:
    """Delete every key under the bench's prefix; returns how many."""
    import redis

    client = redis.Redis.from_url(redis_url)
    deleted = 0
    batch = []
    for name in client.scan_iter(match=f"{REDIS_PREFIX}*", count=1000):
        batch.append(name)
        if len(batch) >= 1000:
            deleted += client.delete(*batch)
            batch = []
    if batch:
        deleted += client.delete(*batch)
    client.close()
    return deleted


def django_setup(env: dict) -> None:
    """Set up Django in this process on the bench's database (for the data and the counts)."""
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def create_main_data(upstream_port: int) -> dict:
    """The provider (kind openai, on the fake upstream), the priced model, and the main bench
    gateway with one key holding a soft spend budget, a token quota, TPM and RPM (none reached).
    Returns ids and the key's secret."""
    from gateway.pricing import Prices
    from gateway.services import model_create, provider_create, resource_group_create
    from gateway.setup import gateway_create
    from quotas.services import rate_limit_set, spend_budget_create, token_quota_set

    provider = provider_create(
        name="bench-upstream",
        kind="openai",
        base_url=f"http://127.0.0.1:{upstream_port}/v1",
        credential=f"fake-{secrets.token_hex(8)}",
    )
    model_create(
        name=MODEL,
        provider=provider,
        upstream_model=UPSTREAM_MODEL,
        prices=Prices(input=Decimal("0.15"), output=Decimal("0.60")),
    )
    group = resource_group_create(name="bench-main")
    gateway, key, secret = gateway_create(resource_group=group, name="bench-main")
    spend_budget_create(api_key=key, limit_usd=Decimal(100_000), refresh_period="monthly")
    token_quota_set(api_key=key, limit_tokens=10**12, refresh_period="daily")
    rate_limit_set(api_key=key, tokens_per_minute=10**9, requests_per_minute=10**7)
    return {"gateway_id": gateway.pk, "key_id": key.pk, "secret": secret}


def create_key_sets(limits: int, counts: tuple[int, ...], work: Path) -> dict:
    """One resource group and gateway with sum(`counts`) keys (bulk-created, hashed with
    `keys.tokens.hash_secret`) and `limits` limits per key: 0; 1 (a key token quota); or 12
    (key, gateway and group × token quota, spend budget, TPM, RPM), all soft, none reached.
    Each count gets its own, distinct keys, written one secret a line to a file in `work`.
    Returns {"gateway_id", "files": {count: path}}."""
    from core.freshness import bump_group
    from gateway.services import resource_group_create
    from gateway.setup import gateway_create
    from keys.models import ApiKey
    from keys.tokens import generate_secret, hash_secret, visible_prefix
    from quotas.models import RateLimit, SpendBudget, TokenQuota
    from quotas.services import rate_limit_set, spend_budget_create, token_quota_set

    group = resource_group_create(name=f"bench-keys-{limits}")
    gateway, _first, _ = gateway_create(resource_group=group, name=f"bench-keys-{limits}")
    if limits == 12:
        for owner in ({"gateway": gateway}, {"resource_group": group}):
            token_quota_set(**owner, limit_tokens=10**14, refresh_period="daily")
            spend_budget_create(**owner, limit_usd=Decimal(900_000), refresh_period="monthly")
            rate_limit_set(**owner, tokens_per_minute=2 * 10**9, requests_per_minute=10**9)
    files = {}
    for count in counts:
        secret_list = [generate_secret() for _ in range(count)]
        keys = [
            ApiKey(gateway=gateway, name=f"bench {count} #{i}", prefix=visible_prefix(s), hashed_secret=hash_secret(s))
            for i, s in enumerate(secret_list)
        ]
        keys = ApiKey.objects.bulk_create(keys, batch_size=5000)
        if limits >= 1:
            TokenQuota.objects.bulk_create(
                [TokenQuota(api_key=k, limit_tokens=10**12, refresh_period="daily") for k in keys], batch_size=5000
            )
        if limits == 12:
            SpendBudget.objects.bulk_create(
                [SpendBudget(api_key=k, limit_usd=Decimal(100_000), refresh_period="monthly") for k in keys],
                batch_size=5000,
            )
            RateLimit.objects.bulk_create(
                [RateLimit(api_key=k, tokens_per_minute=10**9, requests_per_minute=10**7) for k in keys],
                batch_size=5000,
            )
        path = work / f"keys-{limits}-{count}.txt"
        path.write_text("\n".join(secret_list) + "\n")
        files[count] = path
    bump_group(group.pk)
    return {"gateway_id": gateway.pk, "files": files}


def count_events(gateway_id: int) -> tuple[int, int, int]:
    """Usage events of `gateway_id` so far: (all, status 200, status 200 and stream=true)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(*) FILTER (WHERE status_code = 200), "
            "count(*) FILTER (WHERE status_code = 200 AND stream) FROM usage_usageevent WHERE gateway_id = %s",
            [gateway_id],
        )
        row = cursor.fetchone()
    connection.close()
    return int(row[0]), int(row[1]), int(row[2])


def settled_events(gateway_id: int, at_least: int, timeout: float = 60) -> tuple[int, int, int]:
    """Wait until the usage writer has flushed: the count is at least `at_least` and unchanged
    for 2 s (at most `timeout` s); returns `count_events`."""
    deadline = time.monotonic() + timeout
    last, since = count_events(gateway_id), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = count_events(gateway_id)
        if now != last:
            last, since = now, time.monotonic()
        elif now[0] >= at_least and time.monotonic() - since >= 2.0:
            return now
    return last


# --- the bench -------------------------------------------------------------------------------


def hold_lock():
    """Take the machine-wide lock of this bench (LOCK_PATH), waiting while another run holds it:
    two runs would recreate the same database under each other, and share the two cpus. The lock
    is held until this process exits; returns the open lock file, to be kept."""
    lock = open(LOCK_PATH, "a")  # noqa: SIM115 - held for the life of the process
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        say(f"another run of this bench holds {LOCK_PATH} (same database, same cpus): waiting for it to end")
        fcntl.flock(lock, fcntl.LOCK_EX)
    return lock


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of `values`, linear interpolation between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class Bench:
    """Runs every scenario; keeps `results` (JSON-able) and `problems` (failed checks)."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.problems: list[str] = []
        self.upstream: Server | None = None
        self.results: dict = {"targets": {}, "keys": []}
        self.body = {"model": MODEL, "messages": [{"role": "user", "content": "Hello there, gateway!"}]}
        self.stream_body = {**self.body, "stream": True, "stream_options": {"include_usage": True}}

    def problem(self, message: str) -> None:
        """Record a failed check and print it at once."""
        self.problems.append(message)
        print(f"!!! FAILED CHECK: {message}", file=sys.stderr, flush=True)

    def wrk(
        self, label: str, url: str, script: Path, connections: int, seconds: float, server: Server | None = None
    ) -> WrkResult:
        """One wrk run; its errors are failed checks. With `server`, where the CPU went is kept in
        `cpu_cores` of the result (see CpuMeter)."""
        gateway = server.pid if server is not None else None
        bench_pids = [self.upstream.pid] if self.upstream is not None and server is not self.upstream else []
        with CpuMeter(gateway, bench_pids) as meter:
            result = run_wrk(url, script, connections, seconds)
        result.cpu_cores = meter.cores
        for error in result.errors:
            self.problem(f"{label}: wrk: {error}\n{result.output}")
        return result

    def check_events(
        self, label: str, gateway_id: int, before: tuple, responses: int, slack: int, stream: bool = False
    ) -> dict:
        """Compare the usage events stored since `before` with the answers clients got (all 200):
        one event with status 200 for each answer, and at most `slack` more events, for requests
        that wrk cut off at the end of its run (served after wrk left, or, when wrk closed the
        connection before aigw had read the body, recorded as 400 `invalid_request_error`).
        Streaming runs must have stream=true on every 200 event, the others on none."""
        after = settled_events(gateway_id, before[0] + responses)
        events, ok, ok_stream = (after[i] - before[i] for i in range(3))
        check = {"responses": responses, "events": events, "extra_events": events - responses}
        check["cut_off_non_200"] = events - ok
        if ok < responses or events - responses > slack:
            self.problem(
                f"{label}: {events} usage events ({ok} with status 200) for {responses} answers "
                f"(expected {responses} with status 200, plus at most {slack} for requests cut off at the end)"
            )
        if ok_stream != (ok if stream else 0):
            self.problem(f"{label}: {ok_stream} of {ok} events with status 200 have stream=true")
        return check

    def open_loop(self, url: str, auth: str | None, seconds: float) -> dict:
        """Run `bench/open_loop.py` pinned to cpu 0; returns its result with p50/p99 in ms."""
        command = ["taskset", "-c", CLIENT_CPUS, sys.executable, str(BENCH / "open_loop.py"), "--url", url]
        command += ["--rate", str(self.args.rate), "--seconds", str(seconds), "--body", json.dumps(self.body)]
        if auth:
            command += ["--header", f"authorization: {auth}"]
        out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120, env=clean_env())
        if out.returncode != 0:
            raise RuntimeError(f"open-loop client failed:\n{out.stderr}")
        result = json.loads(out.stdout)
        latencies = result.pop("latencies_ms")
        result["answered"] = len(latencies)
        result["p50_ms"] = percentile(latencies, 50)
        result["p99_ms"] = percentile(latencies, 99)
        result["mean_ms"] = statistics.fmean(latencies) if latencies else float("nan")
        result["max_ms"] = max(latencies) if latencies else float("nan")
        return result

    def cold_pass(self, url: str, keys_file: Path) -> dict:
        """The keys of `keys_file` used once each, in order, 32 at a time, for at most
        --cold-seconds s (`bench/open_loop.py --each-key`, pinned to cpu 0); returns answered,
        seconds and errors."""
        command = ["taskset", "-c", CLIENT_CPUS, sys.executable, str(BENCH / "open_loop.py"), "--url", url]
        command += ["--each-key", str(keys_file), "--concurrency", str(SATURATION_CONNECTIONS)]
        command += ["--max-seconds", str(self.args.cold_seconds)]
        command += ["--body", json.dumps(self.body)]
        out = subprocess.run(command, capture_output=True, text=True, timeout=3600, env=clean_env())
        if out.returncode != 0:
            raise RuntimeError(f"cold-pass client failed:\n{out.stderr}")
        return json.loads(out.stdout)

    def stream_samples(self, label: str, url: str, auth: str | None) -> dict:
        """Read STREAM_SAMPLES streams that ask for include_usage with httpx; each must end with
        a chunk carrying the usage (total_tokens 19), then `data: [DONE]`. How many of those usage
        chunks have OpenAI's shape (`choices: []`, a chunk of its own) is counted, not required:
        LiteLLM puts the usage on a chunk with an empty delta instead."""
        import httpx

        headers = {"authorization": auth} if auth else {}
        good = openai_shape = 0
        with httpx.Client(timeout=30) as client:
            for _ in range(STREAM_SAMPLES):
                with client.stream("POST", url, json=self.stream_body, headers=headers) as response:
                    if response.status_code != 200:
                        self.problem(f"{label}: stream answered HTTP {response.status_code}")
                        continue
                    payloads = [line[5:].strip() for line in response.iter_lines() if line.startswith("data:")]
                if len(payloads) < 2 or payloads[-1] != "[DONE]":
                    self.problem(f"{label}: a stream did not end with data: [DONE] ({payloads[-2:]})")
                    continue
                last = json.loads(payloads[-2])
                if (last.get("usage") or {}).get("total_tokens") != 19:
                    self.problem(f"{label}: a stream's last chunk before [DONE] carries no usage: {last}")
                    continue
                good += 1
                openai_shape += last.get("choices") == []
        return {"streams": STREAM_SAMPLES, "ended_with_usage": good, "usage_chunk_with_empty_choices": openai_shape}

    def measure_target(self, name: str, url: str, auth: str | None, server: Server | None, gateway_id=None):
        """Warm up, then saturation, open loop and streaming against one target; RSS at the end."""
        seconds = self.args.duration
        plain = wrk_script(self.work / f"{name}-plain.lua", self.body, auth)
        stream = wrk_script(self.work / f"{name}-stream.lua", self.stream_body, auth)
        result: dict = {"url": url}
        start_pids = set(server.workers()) if server is not None else set()
        say(f"{name}: warm-up")
        self.wrk(f"{name} warm-up", url, plain, SATURATION_CONNECTIONS, 3)
        self.wrk(f"{name} stream warm-up", url, stream, STREAM_CONNECTIONS, 2)
        events = settled_events(gateway_id, 0) if gateway_id else None

        say(f"{name}: saturation, wrk -t1 -c{SATURATION_CONNECTIONS} -d{seconds:g}s")
        saturation = self.wrk(f"{name} saturation", url, plain, SATURATION_CONNECTIONS, seconds, server)
        result["saturation"] = {
            "rps": saturation.rate,
            "responses": saturation.responses,
            "seconds": saturation.seconds,
            "cpu_cores": saturation.cpu_cores,
        }
        if gateway_id:
            result["saturation"]["usage_check"] = self.check_events(
                f"{name} saturation", gateway_id, events, saturation.responses, SATURATION_CONNECTIONS
            )
            events = settled_events(gateway_id, 0)

        say(f"{name}: open loop, {self.args.rate:g} req/s for {seconds:g} s")
        loop = self.open_loop(url, auth, seconds)
        result["open_loop"] = loop
        if loop["errors"] or loop["answered"] != loop["sent"]:
            self.problem(f"{name} open loop: {loop['answered']}/{loop['sent']} answered; {loop['errors'][:5]}")
        if gateway_id:
            loop["usage_check"] = self.check_events(
                f"{name} open loop", gateway_id, events, loop["answered"] + loop["warmup"], 0
            )
            events = settled_events(gateway_id, 0)

        say(f"{name}: streaming, wrk -t1 -c{STREAM_CONNECTIONS} -d{seconds:g}s")
        streaming = self.wrk(f"{name} streaming", url, stream, STREAM_CONNECTIONS, seconds, server)
        result["streaming"] = {
            "sps": streaming.rate,
            "responses": streaming.responses,
            "seconds": streaming.seconds,
            "cpu_cores": streaming.cpu_cores,
        }
        if gateway_id:
            result["streaming"]["usage_check"] = self.check_events(
                f"{name} streaming", gateway_id, events, streaming.responses, STREAM_CONNECTIONS, stream=True
            )
            events = settled_events(gateway_id, 0)
        result["stream_samples"] = self.stream_samples(name, url, auth)
        if gateway_id:
            result["stream_samples"]["usage_check"] = self.check_events(
                f"{name} stream samples", gateway_id, events, STREAM_SAMPLES, 0, stream=True
            )
        if server is not None:
            pids = server.workers()
            if set(pids) != start_pids:
                self.problem(f"{name}: worker processes changed during the run: {sorted(start_pids)} → {sorted(pids)}")
            rss = [rss_mb(p) for p in pids]
            result["rss_mb"] = {"workers": len(pids), "per_worker": rss, "mean": statistics.fmean(rss)}
            if server.pid not in pids:
                result["rss_mb"]["supervisor"] = rss_mb(server.pid)
        self.results["targets"][name] = result
        say(
            f"{name}: {saturation.rate:,.0f} req/s, p50 {loop['p50_ms']:.2f} ms, p99 {loop['p99_ms']:.2f} ms, "
            f"{streaming.rate:,.0f} streams/s"
        )

    # --- targets ---

    def run_upstream(self, port: int, server: Server) -> None:
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        self.measure_target("upstream", url, None, server)

    def run_aigw(self, workers: int, env: dict, data: dict, suffix: str = "") -> None:
        """Measure aigw with `workers` processes on `env`; `suffix` names a variant's row."""
        name = f"aigw-{workers}w{suffix}"
        port = free_port()
        cpus = "1" if workers == 1 else "0-1"
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        auth = f"Bearer {data['secret']}"
        say(f"{name}: starting on cpus {cpus}: {' '.join(aigw_command(workers, port))}")
        server = Server(name, aigw_command(workers, port), cpus=cpus, env=env, log_dir=self.work)
        try:
            wait_answers(url, {"authorization": auth}, self.body, server)
            server.wait_workers(workers)
            self.measure_target(name, url, auth, server, data["gateway_id"])
        finally:
            server.stop()

    def run_litellm(self, workers: int, config: Path, master_key: str) -> None:
        name = f"litellm-{workers}w"
        port = free_port()
        cpus = "1" if workers == 1 else "0-1"
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        auth = f"Bearer {master_key}"
        command = litellm_command(self.args.litellm_venv, config, workers, port)
        say(f"{name}: starting on cpus {cpus}: {' '.join(command)}")
        server = Server(name, command, cpus=cpus, env=litellm_env(), log_dir=self.work, cwd=self.work)
        try:
            wait_answers(url, {"authorization": auth}, self.body, server, timeout=180)
            server.wait_workers(workers)
            self.measure_target(name, url, auth, server)
        finally:
            server.stop()

    def run_keys(self, env: dict, key_sets: dict) -> None:
        """aigw (1 worker) with 1, 1,000 and 50,000 keys in rotation × 0, 1 and 12 limits per key."""
        seconds = self.args.duration
        for limits in LIMITS_PER_KEY:
            data = key_sets[limits]
            name = f"aigw-keys-{limits}limits"
            port = free_port()
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            first = data["files"][self.args.key_counts[0]].read_text().split()[0]
            server = Server(name, aigw_command(1, port), cpus="1", env=env, log_dir=self.work)
            try:
                wait_answers(url, {"authorization": f"Bearer {first}"}, self.body, server)
                server.wait_workers(1)
                for count in self.args.key_counts:
                    label = f"keys={count} limits={limits}"
                    keys_file = data["files"][count]
                    say(f"{label}: cold pass (each key used once)")
                    before = settled_events(data["gateway_id"], 0)
                    cold = self.cold_pass(url, keys_file)
                    if cold["errors"]:
                        self.problem(f"{label} cold pass: {len(cold['errors'])} errors: {cold['errors'][:5]}")
                    cold_check = self.check_events(
                        f"{label} cold pass", data["gateway_id"], before, cold["answered"], 0
                    )
                    warm_script = wrk_script(self.work / f"warm-{limits}-{count}.lua", self.body, keys_file=keys_file)
                    warmup = self.wrk(f"{label} warm-up", url, warm_script, SATURATION_CONNECTIONS, 2)
                    before = settled_events(data["gateway_id"], 0)
                    say(f"{label}: saturation, wrk -t1 -c{SATURATION_CONNECTIONS} -d{seconds:g}s")
                    warm = self.wrk(f"{label} saturation", url, warm_script, SATURATION_CONNECTIONS, seconds, server)
                    check = self.check_events(label, data["gateway_id"], before, warm.responses, SATURATION_CONNECTIONS)
                    # wrk's rotation starts at the file's first key: the measured run used the first
                    # `distinct` keys, of which the cold pass or the warm-up had used the first `warm_keys`.
                    distinct = min(count, check["events"])
                    warm_keys = max(cold["answered"], min(count, warmup.responses))
                    row = {
                        "keys": count,
                        "limits_per_key": limits,
                        "rps": warm.rate,
                        "responses": warm.responses,
                        "cold_pass_rps": cold["answered"] / cold["seconds"] if cold["seconds"] else 0.0,
                        "cold_pass_responses": cold["answered"],
                        "cold_pass_usage_check": cold_check,
                        "keys_warmed": warm_keys,
                        "distinct_keys_measured": distinct,
                        "cold_keys_in_measured_run": max(0, distinct - warm_keys),
                        "usage_check": check,
                        "rss_mb": rss_mb(server.pid),
                        "cpu_cores": warm.cpu_cores,
                    }
                    if server.workers() != [server.pid]:
                        self.problem(f"{label}: the aigw process is not the single worker any more")
                    self.results["keys"].append(row)
                    say(f"{label}: {warm.rate:,.0f} req/s warm, cold pass {row['cold_pass_rps']:,.0f} req/s")
            finally:
                server.stop()


# --- report ----------------------------------------------------------------------------------


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.2f}"


def report(results: dict) -> str:
    """The markdown tables: targets, aigw/LiteLLM ratios, key scaling."""
    targets = results["targets"]
    base = targets.get("upstream", {}).get("open_loop", {})
    lines = ["| target | req/s | added p50 / p99 ms | streams/s | RSS/worker MB |", "| --- | --- | --- | --- | --- |"]
    added: dict[str, tuple[float, float]] = {}
    for name, target in targets.items():
        loop = target["open_loop"]
        if name == "upstream":
            latency = f"(direct: {loop['p50_ms']:.2f} / {loop['p99_ms']:.2f})"
        else:
            added[name] = (loop["p50_ms"] - base.get("p50_ms", 0), loop["p99_ms"] - base.get("p99_ms", 0))
            latency = f"{added[name][0]:.2f} / {added[name][1]:.2f}"
        if loop.get("max_lateness_ms", 0) > LATE_CLIENT_MS:
            latency += f" (client sent up to {loop['max_lateness_ms']:.0f} ms late: starved)"
        rss = target.get("rss_mb", {})
        rss_text = f"{rss['mean']:.0f}" if rss else ""
        if rss and rss.get("workers", 1) > 1:
            rss_text += f" (×{rss['workers']})"
        lines.append(
            f"| {name} | {target['saturation']['rps']:,.0f} | {latency} | {target['streaming']['sps']:,.0f} "
            f"| {rss_text} |"
        )
    lines += [
        "",
        "Where the CPU went during each saturation run, in cores (2 in all): the target; the bench's own load"
        " (fake upstream, wrk; for the upstream row, wrk only); PostgreSQL + Redis; everything else on the machine"
        " (other people's work)",
        "",
        "| target | target | upstream + wrk | PostgreSQL + Redis | other |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, target in targets.items():
        cores = target["saturation"].get("cpu_cores") or {}
        if cores:
            lines.append(
                f"| {name} | {cores['gateway']:.2f} | {cores['bench_load']:.2f} | {cores['postgres_redis']:.2f} "
                f"| {cores['other']:.2f} |"
            )
    ratio_lines = []
    for workers in (1, 2):
        a, lite = targets.get(f"aigw-{workers}w"), targets.get(f"litellm-{workers}w")
        if not a or not lite:
            continue
        ap50, ap99 = added[f"aigw-{workers}w"]
        lp50, lp99 = added[f"litellm-{workers}w"]
        ratio_lines.append(
            f"| {workers} | {_ratio(a['saturation']['rps'], lite['saturation']['rps'])} "
            f"| {_ratio(ap50, lp50)} / {_ratio(ap99, lp99)} "
            f"| {_ratio(a['streaming']['sps'], lite['streaming']['sps'])} "
            f"| {_ratio(a['rss_mb']['mean'], lite['rss_mb']['mean'])} |"
        )
    if ratio_lines:
        lines += [
            "",
            "aigw / LiteLLM (req/s and streams/s: higher is better for aigw above 1; latency and RSS: lower is better"
            " below 1)",
            "",
            "| workers | req/s | added p50 / p99 | streams/s | RSS/worker |",
            "| --- | --- | --- | --- | --- |",
            *ratio_lines,
        ]
    if results["keys"]:
        lines += [
            "",
            "aigw key scaling (1 worker on cpu 1; keys picked round-robin from the first; the cold pass first uses"
            " the keys, in order, within its time budget; then the saturation run's req/s; distinct keys used ="
            " how many of the keys that run reached, (cold) = of those, how many the cold pass had not used)",
            "",
            "| keys in rotation | limits per key | req/s | distinct keys used (cold) | cold pass req/s (keys)"
            " | usage events = answers | other load (cores) |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for row in results["keys"]:
            check = row["usage_check"]
            cold = f"{row['cold_pass_rps']:,.0f} ({row['keys_warmed']:,})" if row["keys"] > 1 else "n/a"
            lines.append(
                f"| {row['keys']:,} | {row['limits_per_key']} | {row['rps']:,.0f} "
                f"| {row['distinct_keys_measured']:,} ({row['cold_keys_in_measured_run']:,}) | {cold} "
                f"| {check['events']:,} = {check['responses']:,} + {check['extra_events']} cut off "
                f"| {row['cpu_cores'].get('other', 0):.2f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 s scenarios, no key scaling")
    parser.add_argument("--duration", type=float, default=None, help="seconds per scenario (default 10, quick 5)")
    parser.add_argument("--rate", type=float, default=50.0, help="open-loop rate, req/s")
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    parser.add_argument("--litellm-venv", type=Path, default=DEFAULT_LITELLM_VENV)
    parser.add_argument("--skip-litellm", action="store_true")
    parser.add_argument("--keys", action=argparse.BooleanOptionalAction, default=None, help="the key scaling")
    parser.add_argument(
        "--key-counts",
        type=lambda text: tuple(int(n) for n in text.split(",")),
        default=KEY_COUNTS,
        help="keys in rotation for the key scaling, comma-separated (default 1,1000,50000)",
    )
    parser.add_argument(
        "--cold-seconds",
        type=float,
        default=240.0,
        help="time budget of each cold pass, s: a set of keys larger than aigw can first-use in it is warmed"
        " only in part (enough for the measured run, which uses the first keys; the table says)",
    )
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    args = parser.parse_args()
    args.duration = args.duration or (5.0 if args.quick else 10.0)
    run_keys = (not args.quick) if args.keys is None else args.keys
    for tool in ("wrk", "taskset", "createdb", "dropdb"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing (apt-get install -y wrk util-linux postgresql-client)")
    if (os.cpu_count() or 0) < 2:
        raise SystemExit("the bench pins to cpus 0 and 1: it needs 2 cpus")
    lock = hold_lock()  # noqa: F841 - kept open until the process exits
    if not args.skip_litellm:
        ensure_litellm(args.litellm_venv)

    work = Path(tempfile.mkdtemp(prefix="aigw-dataplane-"))
    env = {
        **clean_env(),
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        "AIGW_REDIS_PREFIX": REDIS_PREFIX,
        "AIGW_DATA_DIR": str(work / "aigw-data"),
        "SECRET_KEY": secrets.token_urlsafe(40),
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    started = datetime.now(UTC)
    bench = Bench(args, work)
    bench.results["run"] = {
        "started": started.isoformat(timespec="seconds"),
        "commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip(),
        "loadavg_start": os.getloadavg(),
        "duration_s": args.duration,
        "open_loop_rate": args.rate,
        "litellm": None if args.skip_litellm else LITELLM_VERSION,
        "python": sys.version.split()[0],
    }
    say(f"work dir {work}; load average {os.getloadavg()}")
    upstream = None
    try:
        clear_redis(args.redis_url)
        say(f"recreating {args.database_url} and migrating")
        prepare_database(args.database_url, env)
        django_setup(env)
        upstream_port = free_port()
        upstream = Server(
            "upstream",
            [sys.executable, str(BENCH / "fake_upstream.py"), "--port", str(upstream_port)],
            cpus=UPSTREAM_CPUS,
            env=clean_env(),
            log_dir=work,
        )
        main_data = create_main_data(upstream_port)
        key_sets = {}
        if run_keys:
            say(f"creating key sets {args.key_counts} × limits {LIMITS_PER_KEY}")
            t0 = time.monotonic()
            key_sets = {limits: create_key_sets(limits, args.key_counts, work) for limits in LIMITS_PER_KEY}
            say(f"key sets created in {time.monotonic() - t0:.1f} s")
        bench.upstream = upstream
        wait_answers(f"http://127.0.0.1:{upstream_port}/v1/chat/completions", {}, bench.body, upstream, 20)
        master_key = f"sk-bench-{secrets.token_hex(16)}"
        config = litellm_config(work / "litellm.yaml", upstream_port, master_key)

        bench.run_upstream(upstream_port, upstream)
        for workers in (1, 2):
            bench.run_aigw(workers, env, main_data)
            if not args.skip_litellm:
                bench.run_litellm(workers, config, master_key)
        # TPM's estimate without the o200k tokenizer in memory (docs/limits.md)
        bench.run_aigw(1, {**env, "AIGW_TPM_ESTIMATE": "characters"}, main_data, " tpm=characters")
        if run_keys:
            bench.run_keys(env, key_sets)
    finally:
        if upstream is not None:
            upstream.stop()
        try:
            clear_redis(args.redis_url)
        except Exception as exc:  # noqa: BLE001 - cleaning up; report, do not hide the real error
            print(f"could not clear the bench's Redis keys: {exc}", file=sys.stderr)

    bench.results["run"]["loadavg_end"] = os.getloadavg()
    bench.results["run"]["seconds"] = (datetime.now(UTC) - started).total_seconds()
    bench.results["problems"] = bench.problems
    table = report(bench.results)
    bench.results["table"] = table
    print()
    print(
        f"aigw data plane vs LiteLLM {LITELLM_VERSION}, {started:%Y-%m-%d %H:%M} UTC, commit "
        f"{bench.results['run']['commit'][:10]}; load average at start {bench.results['run']['loadavg_start'][0]:.2f}, "
        f"at end {bench.results['run']['loadavg_end'][0]:.2f}; {args.duration:g} s per scenario, open loop "
        f"{args.rate:g} req/s"
    )
    print()
    print(table)
    if args.json:
        args.json.write_text(json.dumps(bench.results, indent=2, default=str))
        say(f"results written to {args.json}")
    if bench.problems:
        say(f"logs kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    if bench.problems:
        print(f"\n{len(bench.problems)} FAILED CHECK(S):", file=sys.stderr)
        for message in bench.problems:
            print(f"- {message.splitlines()[0]}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
