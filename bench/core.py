"""What every section gets: the running stack, the mode (quick or full), and shared rigs."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.stack import Stack, Web
from bench.support import PYTHON, Child, cpu_seconds


@dataclass
class Bench:
    stack: Stack
    quick: bool
    # Repetitions of each measurement; sections report medians over them.
    runs: int
    log: Callable[[str], None]
    # Results of the sections run so far in this invocation, by name.
    results: dict[str, Any] = field(default_factory=dict)

    def raw_clients(self, name: str = "rawclients") -> Child:
        return self.stack.child(name, [PYTHON, "-m", "bench.rawclients"], commands=True)

    def connect_raw(
        self,
        clients: Child,
        web_url: str,
        users: Sequence[tuple[int, str]],
        *,
        timeout: float = 30.0,
        concurrency: int = 100,
        offer_deflate: bool = True,
    ) -> dict[str, Any]:
        answer = clients.ask(
            {
                "cmd": "connect",
                "url": web_url,
                "tokens": [list(u) for u in users],
                "concurrency": concurrency,
                "timeout": timeout,
                "offer_deflate": offer_deflate,
            },
            timeout=timeout * (len(users) / concurrency + 2) + 30,
        )
        return answer


class CpuMeter:
    """CPU used by some processes over an interval, as a share of one core."""

    def __init__(self, processes: dict[str, int]) -> None:
        self._pids = processes
        self._start = time.perf_counter()
        self._cpu = {name: _cpu(pid) for name, pid in processes.items()}

    def shares(self) -> dict[str, float]:
        elapsed = time.perf_counter() - self._start
        return {
            name: round((_cpu(pid) - self._cpu[name]) / elapsed, 3) if elapsed > 0 else 0.0
            for name, pid in self._pids.items()
        }


def _cpu(pid: int) -> float:
    try:
        return cpu_seconds(pid)
    except (FileNotFoundError, ProcessLookupError):
        return 0.0


def web_processes(bench: Bench, web: Web, **others: Child) -> dict[str, int]:
    redis = bench.stack.children[0]
    return {"web": web.pid, "redis": redis.pid, **{name: child.pid for name, child in others.items()}}
