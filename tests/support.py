"""Helpers shared by the fixtures: free ports, private Redis servers, fresh databases, processes by PID."""

from __future__ import annotations

import contextlib
import email.policy
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from aiosmtpd.controller import Controller
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


class PostgresServer:
    """A private PostgreSQL server in a temp dir on a free port (trust auth), for tests that stop and start it.

    ``initdb`` and ``postgres`` refuse to run as root: as root, the server runs as the
    ``postgres`` user, which then owns the temp dir.
    """

    def __init__(self, bin_dir: Path, log_dir: Path) -> None:
        self._bin = bin_dir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="test-pg-"))
        self.data = self.root / "data"
        self.log_path = log_dir / f"postgres-{self.port}.log"
        self._user: str | None = "postgres" if os.geteuid() == 0 else None
        if self._user is not None:
            shutil.chown(self.root, self._user)
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        try:
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync")
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    def _run(self, tool: str, *args: str) -> None:
        out = subprocess.run(
            [str(self._bin / tool), *args], capture_output=True, text=True, check=False, user=self._user
        )
        if out.returncode != 0:
            raise RuntimeError(f"{tool} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=40 -c shared_buffers=16MB"
        )
        # -l: the server's log outlives this call (pg_ctl daemonises it).
        server_log = str(self.root / "log")
        self._run("pg_ctl", "start", "-w", "-D", str(self.data), "-l", server_log, "-o", options)

    def stop(self) -> None:
        """Stop at once, as a crash would: every connection is cut, nothing is shut down cleanly."""
        self._run("pg_ctl", "stop", "-w", "-m", "immediate", "-D", str(self.data))

    def pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def answers(self) -> bool:
        engine = sa.create_engine(self.url)
        try:
            with engine.connect() as conn:
                return conn.execute(sa.text("SELECT 1")).scalar() == 1
        except sa.exc.OperationalError:
            return False
        finally:
            engine.dispose()

    def destroy(self) -> None:
        """Kill the server by its PID (its backends follow their postmaster) and remove its files."""
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                wait_for(lambda: not _running(pid), 10, "postgres to exit")
        with contextlib.suppress(OSError):
            shutil.copyfile(self.root / "log", self.log_path)
        shutil.rmtree(self.root, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def postgres_bin_dir() -> Path | None:
    """The newest PostgreSQL installed under /usr/lib/postgresql (Debian's layout)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    return found[-1].parent if found else None


@dataclass
class Received:
    rcpt_tos: list[str]
    message: EmailMessage


class MailSink:
    """An SMTP server that keeps what it accepts and refuses (550) any address containing "bounce".

    ``hang_up_on`` holds the numbers of DATA commands (1-based, counted across connections) at
    which it closes the connection instead of answering, as a crashing or restarted server would.
    """

    def __init__(self, port: int, hang_up_on: frozenset[int] = frozenset()) -> None:
        self.port = port
        self.received: list[Received] = []
        self.hang_up_on = hang_up_on
        self._data_commands = 0
        self._controller = Controller(self, hostname="127.0.0.1", port=port)

    def start(self) -> MailSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    async def handle_RCPT(self, server, session, envelope, address: str, rcpt_options) -> str:
        if "bounce" in address:
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        self._data_commands += 1
        if self._data_commands in self.hang_up_on:
            server.transport.close()
            return "421 unreachable: the connection is already closed"
        parsed = message_from_bytes(envelope.content, policy=email.policy.default)
        self.received.append(Received(list(envelope.rcpt_tos), parsed))
        return "250 OK"

    def recipients(self) -> list[str]:
        return [to for r in self.received for to in r.rcpt_tos]
