"""Processes, files and numbers shared by every section (ports and waiting: tests.support)."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any

from tests.support import free_port, wait_for

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
# Idle sockets are file descriptors on both ends; the default soft limit (1024) would be the
# ceiling of the connections section instead of the server.
WANTED_NOFILE = 65536


def raise_file_limit(wanted: int = WANTED_NOFILE) -> int:
    """Raise RLIMIT_NOFILE as far as allowed; returns the soft limit now in force."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for new_hard in (max(hard, wanted), hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, new_hard), new_hard))
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _child_setup() -> None:
    raise_file_limit()


class Child:
    """A subprocess in its own process group, always stopped by its PID's group.

    ``commands=True`` gives it a JSON-lines conversation on stdin/stdout; its stderr goes
    to a log file either way.
    """

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        env: dict[str, str],
        log_dir: Path,
        *,
        commands: bool = False,
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            list(args),
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE if commands else subprocess.DEVNULL,
            stdout=subprocess.PIPE if commands else self._log,
            stderr=self._log,
            start_new_session=True,
            preexec_fn=_child_setup,
            text=commands,
            bufsize=1 if commands else -1,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log(self, tail: int = 4000) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")[-tail:]

    def ask(self, command: dict[str, Any], timeout: float = 120.0) -> dict[str, Any]:
        """Send one command line and wait for its one-line JSON answer."""
        self.send(command)
        return self.answer(timeout)

    def send(self, command: dict[str, Any]) -> None:
        stdin: IO[str] = self.popen.stdin  # type: ignore[assignment]
        stdin.write(json.dumps(command) + "\n")
        stdin.flush()

    def answer(self, timeout: float = 120.0) -> dict[str, Any]:
        stdout: IO[str] = self.popen.stdout  # type: ignore[assignment]
        line = _readline(stdout, timeout)
        if not line:
            raise RuntimeError(f"{self.name} exited without answering:\n{self.log()}")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"{self.name}: {answer['error']}\n{self.log()}")
        return answer

    def stop(self, timeout: float = 5.0) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if self.alive():
                os.killpg(self.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout)
        # Anything the child left in its group (an RQ work horse) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout)
        for stream in (self.popen.stdin, self.popen.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._log.close()


def _readline(stream: IO[str], timeout: float) -> str:
    import selectors

    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise TimeoutError(f"no answer within {timeout}s")
    return stream.readline()


def serve_commands(handlers: dict[str, Callable[..., dict[str, Any]]]) -> None:
    """A child's side of ``Child.ask``: one JSON answer line per command line, until ``quit``."""
    for line in sys.stdin:
        command = json.loads(line)
        name = command.pop("cmd")
        if name == "quit":
            break
        try:
            answer = handlers[name](**command)
        except Exception as exc:  # noqa: BLE001 -- reported to the orchestrator, which stops the run
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


def start_redis(log_dir: Path) -> tuple[Child, str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not on PATH (Debian/Ubuntu: apt-get install redis-server)")
    port = free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    # A saturated subscriber falls behind on purpose in the throughput section; Redis's default
    # pub/sub output limit would disconnect it mid-measurement.
    args += ["--client-output-buffer-limit", "pubsub 0 0 0", "--maxclients", "20000"]
    proc = Child(f"redis-{port}", args, dict(os.environ), log_dir)
    url = f"redis://127.0.0.1:{port}/0"

    def answers() -> bool:
        from redis import Redis
        from redis.exceptions import RedisError

        try:
            with Redis.from_url(url, socket_connect_timeout=1) as r:
                return bool(r.ping())
        except RedisError:
            return not proc.alive()

    wait_for(answers, 10, "redis-server to start")
    if not proc.alive():
        raise RuntimeError(f"redis-server failed to start:\n{proc.log()}")
    return proc, url


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (not its children)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: an observed value, never an interpolation."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: Iterable[float]) -> float:
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def latency_summary(latencies_s: Sequence[float]) -> dict[str, float]:
    return {
        "p50_ms": percentile(latencies_s, 50) * 1000,
        "p99_ms": percentile(latencies_s, 99) * 1000,
        "max_ms": (max(latencies_s) if latencies_s else float("nan")) * 1000,
        "samples": len(latencies_s),
    }


def table(title: str, headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            if value != value:
                return "-"
            return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"
        if isinstance(value, int) and not isinstance(value, bool):
            return f"{value:,}"
        return str(value)

    body = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)]
    lines = [f"\n== {title}", "  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(lines)
