"""Push latency: a job's ``ctx.report`` (the event's ``ts``) to a Socket.IO client's handler.

Jobs are simulated by ``bench.loadgen`` processes running the real job-side code
(``TaskContext.report``: coalescing, the database commit of stored events, the publish);
clients are python-socketio ``AsyncClient``s in one process (``bench.sioclients``), one per
user, all on one web process. Both stamp with ``time.time()`` on this machine's clock.
"""

from __future__ import annotations

import time
from typing import Any

from bench.core import Bench, CpuMeter, web_processes
from bench.stack import Web
from bench.support import PYTHON, Child, latency_summary, median, table

FULL_POINTS = [(rate, tasks) for rate in (100, 1000, 5000) for tasks in (1, 10, 100)]
QUICK_POINTS = [(1000, 10)]
# One simulated-jobs process keeps up with ~50 busy tasks; more tasks get more processes, as
# real jobs each have their own (their commits and Redis round trips then overlap).
TASKS_PER_LOADGEN = 50
WARMUP = 0.5
RUN_SECONDS = 1.0


class LatencyRig:
    """Clients for ``max_tasks`` users on one web node, and the processes that play their jobs."""

    def __init__(self, bench: Bench, web: Web, max_tasks: int) -> None:
        self.bench = bench
        self.web = web
        self.users = bench.stack.ensure_users(max_tasks)
        stack = bench.stack
        self.clients = stack.child(
            f"sioclients-{web.mode}", [PYTHON, "-m", "bench.sioclients"], commands=True
        )
        procs = -(-max_tasks // TASKS_PER_LOADGEN)
        pool = -(-max_tasks // procs) + 5
        # The job side never serves sockets; the threading mode keeps eventlet out of it.
        self.loadgens = [
            stack.child(
                f"loadgen-{web.mode}-{i}",
                [PYTHON, "-m", "bench.loadgen", str(pool)],
                env={"ASYNC_MODE": "threading"},
                commands=True,
            )
            for i in range(procs)
        ]
        answer = self.clients.ask(
            {"cmd": "connect", "url": web.url, "tokens": [list(u) for u in self.users]}, timeout=120
        )
        if answer["connected"] != len(self.users):
            raise RuntimeError(f"only {answer['connected']} of {len(self.users)} clients connected")

    def close(self) -> None:
        for child in (self.clients, *self.loadgens):
            self.bench.stack.stop(child)

    def point(self, rate: float, tasks: int, duration: float, runs: int) -> dict[str, Any]:
        procs = self.loadgens[: -(-tasks // TASKS_PER_LOADGEN)]
        user_ids = [uid for uid, _token in self.users[:tasks]]
        _all(procs, lambda j: {"cmd": "start", "user_ids": user_ids[j :: len(procs)]})
        try:
            # The first report of a fresh task is always stored; the warm-up absorbs that.
            self._run(procs, rate, WARMUP)
            time.sleep(0.1)
            self.clients.ask({"cmd": "drain"})
            per_run = [self._measured_run(procs, rate, duration) for _ in range(runs)]
        finally:
            _all(procs, lambda j: {"cmd": "finish"})
            time.sleep(0.1)
            self.clients.ask({"cmd": "drain"})
        latencies = [lat for run in per_run for lat in run.pop("latencies")]
        pooled = latency_summary(latencies)
        return {
            "rate": rate,
            "tasks": tasks,
            "loadgen_processes": len(procs),
            "reported_per_s": median(r["reported_per_s"] for r in per_run),
            "delivered_per_s": median(r["delivered_per_s"] for r in per_run),
            "p50_ms": median(r["p50_ms"] for r in per_run),
            "p99_ms": median(r["p99_ms"] for r in per_run),
            "max_ms": max(r["max_ms"] for r in per_run),
            "samples": pooled["samples"],
            "pooled": pooled,
            "runs": per_run,
        }

    def _run(self, procs: list[Child], rate: float, duration: float) -> list[dict[str, Any]]:
        share = rate / len(procs)
        return _all(
            procs,
            lambda j: {"cmd": "run", "rate": share, "duration": duration, "offset": j / len(procs)},
            timeout=duration * 3 + 30,
        )

    def _measured_run(self, procs: list[Child], rate: float, duration: float) -> dict[str, Any]:
        meter = CpuMeter(
            web_processes(
                self.bench, self.web, clients=self.clients, **{f"jobs{i}": p for i, p in enumerate(procs)}
            )
        )
        answers = self._run(procs, rate, duration)
        cpu = meter.shares()
        # Events still in flight when the reports stop belong to this run.
        time.sleep(0.15)
        events = self.clients.ask({"cmd": "drain"})["events"]
        start, end = min(a["start"] for a in answers), max(a["end"] for a in answers)
        seconds = end - start
        mine = [e for e in events if start <= e[1] <= end and e[4] == "running"]
        latencies = [recv - ts for recv, ts, *_ in mine]
        stored = [recv - ts for recv, ts, volatile, *_ in mine if not volatile]
        ticks = [recv - ts for recv, ts, volatile, *_ in mine if volatile]
        return {
            "reported_per_s": sum(a["reported"] for a in answers) / seconds,
            "delivered_per_s": len(mine) / seconds,
            "stored_per_s": len(stored) / seconds,
            **latency_summary(latencies),
            "stored_p50_ms": latency_summary(stored)["p50_ms"],
            "volatile_p50_ms": latency_summary(ticks)["p50_ms"],
            "max_schedule_lag_ms": max(a["max_lag_ms"] for a in answers),
            "cpu_cores": cpu,
            "latencies": latencies,
        }


def _all(procs: list[Child], command: Any, timeout: float = 120.0) -> list[dict[str, Any]]:
    """Send each process its command, then collect the answers: they run side by side."""
    for j, proc in enumerate(procs):
        proc.send(command(j))
    return [proc.answer(timeout) for proc in procs]


def run(bench: Bench) -> dict[str, Any]:
    points = QUICK_POINTS if bench.quick else FULL_POINTS
    duration = 1.0 if bench.quick else RUN_SECONDS
    limit = bench.stack.max_db_connections()
    skipped = []
    if limit is not None:
        # Each simulated job holds a database connection, as each real one does; the web node,
        # the watchdog and the clients' connects need a few more.
        skipped = [
            {"rate": r, "tasks": n, "skipped": f"needs > {limit} connections"}
            for r, n in points
            if n > limit - 20
        ]
        points = [(r, n) for r, n in points if n <= limit - 20]
    web = bench.stack.start_web("eventlet")
    rig = None
    try:
        rig = LatencyRig(bench, web, max(tasks for _rate, tasks in points))
        rows = []
        for rate, tasks in points:
            rows.append(rig.point(rate, tasks, duration, bench.runs))
            row = rows[-1]
            bench.log(
                f"  latency {rate}/s over {tasks} tasks: p50 {row['p50_ms']:.2f} ms, "
                f"p99 {row['p99_ms']:.2f} ms, delivered {row['delivered_per_s']:.0f}/s"
            )
    finally:
        if rig is not None:
            rig.close()
        bench.stack.stop(web)
    return {"async_mode": "eventlet", "run_seconds": duration, "points": rows, "skipped": skipped}


def show(result: dict[str, Any]) -> str:
    text = table(
        "latency: ctx.report -> Socket.IO client (eventlet, one web process)",
        ["reported/s", "tasks", "achieved/s", "delivered/s", "p50 ms", "p99 ms", "max ms", "samples"],
        [
            [
                p["rate"],
                p["tasks"],
                p["reported_per_s"],
                p["delivered_per_s"],
                p["p50_ms"],
                p["p99_ms"],
                p["max_ms"],
                p["samples"],
            ]
            for p in result["points"]
        ],
    )
    for skipped in result.get("skipped", []):
        text += f"\n{skipped['rate']}/s over {skipped['tasks']} tasks skipped: {skipped['skipped']}"
    return text
