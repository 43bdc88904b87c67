"""Sections latency (one point: 1000 reports/s over 10 tasks) and throughput (1 client) per async mode.

eventlet's figures are taken from this invocation's latency and throughput sections when
they ran (same measurement, same node); gevent and threading are measured here.
"""

from __future__ import annotations

from typing import Any

from bench.core import Bench
from bench.sections import throughput
from bench.sections.latency import RUN_SECONDS, LatencyRig
from bench.stack import ASYNC_MODES
from bench.support import table

RATE, TASKS, CLIENTS = 1000, 10, 1


def _reused(bench: Bench) -> dict[str, Any] | None:
    latency = bench.results.get("latency", {}).get("points", [])
    point = next((p for p in latency if p["rate"] == RATE and p["tasks"] == TASKS), None)
    rows = bench.results.get("throughput", {}).get("points", [])
    flow = next((p for p in rows if p["clients"] == CLIENTS), None)
    if point is None or flow is None:
        return None
    return {"latency": point, "throughput": flow, "reused": True}


def measure(bench: Bench, mode: str) -> dict[str, Any]:
    duration = 1.0 if bench.quick else RUN_SECONDS
    web = bench.stack.start_web(mode)
    rig = None
    try:
        rig = LatencyRig(bench, web, TASKS)
        point = rig.point(RATE, TASKS, duration, bench.runs)
        rig.close()
        rig = None
        flow = throughput.compare(bench, mode, CLIENTS, web=web)
    finally:
        if rig is not None:
            rig.close()
        bench.stack.stop(web)
    return {"latency": point, "throughput": flow, "reused": False}


def run(bench: Bench) -> dict[str, Any]:
    modes = {}
    for mode in ASYNC_MODES:
        found = _reused(bench) if mode == "eventlet" else None
        modes[mode] = found or measure(bench, mode)
        m = modes[mode]
        bench.log(
            f"  {mode}: p50 {m['latency']['p50_ms']:.2f} ms, p99 {m['latency']['p99_ms']:.2f} ms, "
            f"{m['throughput']['product_per_s']:.0f}/s of {m['throughput']['ceiling_per_s']:.0f}/s"
        )
    return {"rate": RATE, "tasks": TASKS, "clients": CLIENTS, "modes": modes}


def show(result: dict[str, Any]) -> str:
    return table(
        f"async modes: latency at {result['rate']}/s over {result['tasks']} tasks; throughput with 1 client",
        [
            "mode",
            "p50 ms",
            "p99 ms",
            "max ms",
            "delivered/s",
            "product/s",
            "ceiling/s",
            "ratio",
            "during flood/s",
        ],
        [
            [
                mode,
                m["latency"]["p50_ms"],
                m["latency"]["p99_ms"],
                m["latency"]["max_ms"],
                m["latency"]["delivered_per_s"],
                m["throughput"]["product_per_s"],
                m["throughput"]["ceiling_per_s"],
                m["throughput"]["ratio"],
                m["throughput"]["delivered_during_flood_per_s"],
            ]
            for mode, m in result["modes"].items()
        ],
    )
