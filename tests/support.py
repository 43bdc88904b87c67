"""Helpers shared by the fixtures: free ports, private Redis servers, fresh databases, processes by PID."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from redis import Redis
from redis.exceptions import RedisError

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def redis_answers(url: str) -> bool:
    try:
        with Redis.from_url(url, socket_connect_timeout=1) as r:
            return bool(r.ping())
    except RedisError:
        return False


class Process:
    """A child in its own process group, stopped (with its children) by PID."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def descendants(self) -> list[int]:
        """Children, grandchildren, ...: an RQ work horse runs in a process group of its own."""
        found, frontier = [], [self.pid]
        while frontier:
            out = subprocess.run(
                ["ps", "-o", "pid=", "--ppid", ",".join(map(str, frontier))],
                capture_output=True,
                text=True,
                check=False,
            )
            frontier = [int(pid) for pid in out.stdout.split()]
            found += frontier
        return found

    def signal(self, sig: int) -> None:
        if self.alive():
            os.killpg(self.pid, sig)

    def stop(self, timeout: float = 10.0) -> None:
        try:
            self.signal(signal.SIGTERM)
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.popen.wait(timeout)
        except ProcessLookupError:
            pass
        finally:
            # A work horse may outlive its worker; the group takes it down too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
            self._log.close()


def start_redis_server(log_dir: Path, port: int | None = None) -> tuple[Process, str]:
    """A private, empty redis-server (on ``port`` to restart one where its clients look)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(
            "No Redis answers and redis-server is not on PATH. Install it "
            "(Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis) "
            "or point TEST_REDIS_URL at a running Redis."
        )
    port = port or free_port()
    proc = Process(
        f"redis-{port}-{time.monotonic_ns()}",
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        dict(os.environ),
        log_dir,
    )
    url = f"redis://127.0.0.1:{port}/0"
    wait_for(lambda: redis_answers(url) or not proc.alive(), 10, "redis-server to start")
    if not proc.alive():
        raise RuntimeError(f"redis-server failed to start:\n{proc.log()}")
    return proc, url


class RedisServer:
    """A private redis-server that a fault test kills (SIGKILL) and starts again, empty, on the same port."""

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self.proc, self.url = start_redis_server(log_dir)
        self.port = int(self.url.rsplit(":", 1)[1].split("/")[0])

    def kill(self) -> None:
        self.proc.signal(signal.SIGKILL)
        self.proc.stop()

    def start(self) -> None:
        self.proc, _ = start_redis_server(self._log_dir, port=self.port)

    def stop(self) -> None:
        self.proc.stop()


def fresh_database(url: str | None, tmp_path: Path) -> str:
    """An empty database: a new SQLite file, or the PostgreSQL test database wiped clean."""
    if not url:
        return f"sqlite:///{tmp_path / 'app.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()
    return url


def require_tool(name: str, install_hint: str) -> str:
    """A system tool the test drives: skipped on a laptop without it, a failure in CI."""
    import pytest

    path = shutil.which(name) if not os.path.isabs(name) else (name if os.path.exists(name) else None)
    if path is None:
        message = f"{name} is not installed ({install_hint})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path
