#!/usr/bin/env python3
"""aigw's two set-up commands, for a fresh machine with only Python 3.11+.

    python3 scripts/dev.py serve   # install, migrate, seed the demo, serve on http://127.0.0.1:8000
    python3 scripts/dev.py test    # install with test tools, run the whole test suite

Both install into ./.venv (re-installing only when pyproject.toml changed). `serve` and `test`
use the embedded default (SQLite in ./var, in-process counters) unless DATABASE_URL and
REDIS_URL point at PostgreSQL and Redis. Extra arguments of `test` go to pytest.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
CHROMIUM = os.environ.get("AIGW_CHROMIUM", "/usr/bin/chromium")


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def run(*args: str | Path, **kwargs) -> None:
    subprocess.run([str(a) for a in args], cwd=ROOT, check=True, **kwargs)


def ensure_venv(extras: str) -> None:
    """Create .venv and install aigw (editable) with `extras`, unless already done."""
    if sys.version_info < (3, 11):  # noqa: UP036 - this script may be started by an older python3
        sys.exit(f"aigw needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not PYTHON.exists():
        say("creating .venv")
        run(sys.executable, "-m", "venv", VENV)
    stamp = VENV / f".aigw-installed{extras}"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    say(f"installing aigw{extras} into .venv")
    run(PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(PYTHON, "-m", "pip", "install", "--quiet", "-e", f".{extras}")
    stamp.write_text(digest)


def ensure_chromium() -> bool:
    """Debian's Chromium for the browser tests: installed with apt-get when we may."""
    if Path(CHROMIUM).exists():
        return True
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        say("installing Debian's chromium for the browser tests")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        run("apt-get", "update", "-qq", env=env)
        run("apt-get", "install", "-y", "-qq", "chromium", env=env)
        return Path(CHROMIUM).exists()
    return False


def serve(args: list[str]) -> None:
    ensure_venv("")
    manage = [PYTHON, "manage.py"]
    say("migrating the database")
    run(*manage, "migrate", "--no-input", "-v", "0")
    run(*manage, "demo")
    say("serving the console and /v1/ on http://127.0.0.1:8000 (Ctrl-C stops)")
    say("the aigw CLI is in .venv/bin: run `source .venv/bin/activate` in another shell, then `aigw --help`")
    os.chdir(ROOT)
    os.execv(
        PYTHON,
        [
            str(PYTHON),
            "-m",
            "uvicorn",
            "config.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            "8000",
            *args,
        ],
    )


def test(args: list[str]) -> None:
    ensure_venv("[dev]")
    pytest_args = ["-p", "no:cacheprovider", *args]
    if not ensure_chromium():
        if os.environ.get("CI") or os.environ.get("AIGW_REQUIRE_SERVICES", "").lower() in ("1", "true"):
            sys.exit(f"Chromium is missing at {CHROMIUM}: the browser tests cannot run")
        say(
            f"Chromium is missing at {CHROMIUM} and cannot be installed here: "
            "the browser tests are NOT run (install Debian's chromium to run them)"
        )
        pytest_args = ["-m", "not browser", *pytest_args]
    database = os.environ.get("DATABASE_URL", "") or "embedded SQLite"
    say(
        f"running the tests on {database.split('@')[-1]}, counters in "
        f"{'Redis' if os.environ.get('REDIS_URL') else 'process memory'}"
    )
    os.chdir(ROOT)
    os.execv(PYTHON, [str(PYTHON), "-m", "pytest", *pytest_args])


def screenshots(args: list[str]) -> None:
    """Run the browser tests and save their screenshots to docs/screenshots/."""
    os.environ["AIGW_SCREENSHOTS"] = "1"
    test(["-m", "browser", *args])


def lint(args: list[str]) -> None:
    ensure_venv("[dev]")
    run(BIN / "ruff", "check", ".")
    run(BIN / "ruff", "format", "--check", ".")
    run(BIN / "mypy", "config", "core", "dataplane", "gateway", "keys", "quotas", "usage")
    run(BIN / "mypy", "aigw")
    run(BIN / "lint-imports")  # the layers of docs/architecture.md (contracts in pyproject.toml)
    run(PYTHON, "manage.py", "makemigrations", "--check", "--dry-run")


COMMANDS = {"serve": serve, "test": test, "lint": lint, "screenshots": screenshots}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: python3 scripts/dev.py {{{'|'.join(COMMANDS)}}} [args]")
    COMMANDS[sys.argv[1]](sys.argv[2:])
