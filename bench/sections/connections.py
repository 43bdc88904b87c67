"""Idle connections one web process holds: memory per connection, then one event to every user.

Clients are ``bench.rawclients`` (one asyncio process, a callback protocol per socket), each
authenticated with its own user's token. At each level: the server's VmRSS over its
warmed-up baseline per connection, its CPU while the sockets sit idle, then one event
published per user (``ts`` stamped at publish) and the latency of its arrival on each
connection.

Every level is measured on ``python run.py`` as shipped: it serves up to MAX_CONNECTIONS
(default 10,000) sockets per process. Then the floor under it: the same memory per socket
for the layers the product is built on (``bench/floor_server.py``), each in its own process.
"""

from __future__ import annotations

import time
from typing import Any

from bench.core import Bench
from bench.stack import Web, healthy
from bench.support import PYTHON, Child, cpu_seconds, latency_summary, rss_kib, table
from tests.support import free_port, wait_for

FULL_LEVELS = (1000, 5000, 10000)
QUICK_LEVELS = (500,)
WARMUP_CLIENTS = 20
FLOOR_KINDS = ("websocket", "socketio", "socketio-lean")
FLOOR_SOCKETS, QUICK_FLOOR_SOCKETS = 1000, 200
IDLE_SECONDS = 1.0


def _baseline(bench: Bench, web: Web, users: list[tuple[int, str]]) -> int:
    """RSS once the node has served a few sockets: lazy imports and first-use caches are in."""
    warm = bench.raw_clients(f"warmup-{web.pid}")
    try:
        bench.connect_raw(warm, web.url, users[:WARMUP_CLIENTS])
        warm.ask({"cmd": "close"})
    finally:
        bench.stack.stop(warm)
    time.sleep(0.5)
    return rss_kib(web.pid)


def _level(
    bench: Bench, web: Web, clients: Child, users: list[tuple[int, str]], held: int, baseline: int
) -> dict[str, Any]:
    """Top ``clients`` up to ``len(users)`` connections and measure the node there."""
    target = len(users)
    connect = bench.connect_raw(clients, web.url, users[held:target], timeout=30)
    connected = held + connect["connected"]
    time.sleep(0.5)
    rss = rss_kib(web.pid)
    cpu0, t0 = cpu_seconds(web.pid), time.perf_counter()
    time.sleep(IDLE_SECONDS)
    idle_cpu = (cpu_seconds(web.pid) - cpu0) / (time.perf_counter() - t0)
    first = _first_events(bench, clients, users[:target], connected)
    return {
        "target": target,
        "connected": connected,
        "connect_per_s": connect["connected"] / connect["seconds"] if connect["seconds"] else None,
        "connect_errors": connect["errors"],
        "rss_kib": rss,
        "baseline_rss_kib": baseline,
        "kib_per_connection": (rss - baseline) / connected if connected else None,
        "idle_cpu_percent": idle_cpu * 100,
        **first,
    }


def _first_events(
    bench: Bench, clients: Child, users: list[tuple[int, str]], connected: int
) -> dict[str, Any]:
    publisher = bench.stack.child("publisher-connections", [PYTHON, "-m", "bench.publisher"], commands=True)
    try:
        user_ids = [uid for uid, _token in users]
        after = bench.stack.last_seqs(user_ids)
        clients.ask({"cmd": "arm"})
        sent = publisher.ask({"cmd": "one_each", "user_ids": user_ids, "after": after}, timeout=120)
        got = clients.ask({"cmd": "first", "expected": connected, "timeout": 60}, timeout=90)
    finally:
        bench.stack.stop(publisher)
    summary = latency_summary(got["latencies"])
    return {
        "first_event": {**summary, "received": len(got["latencies"]), "publish_seconds": sent["seconds"]},
        "open_after": got["open"],
    }


def run(bench: Bench) -> dict[str, Any]:
    levels = QUICK_LEVELS if bench.quick else FULL_LEVELS
    users = bench.stack.ensure_users(max(levels))
    rows = []
    web = bench.stack.start_web("eventlet")
    clients = bench.raw_clients("rawclients-connections")
    try:
        baseline, held = _baseline(bench, web, users), 0
        for n in levels:
            rows.append(_level(bench, web, clients, users[:n], held, baseline))
            held = rows[-1]["connected"]
            bench.log(f"  {held} connections: {rows[-1]['kib_per_connection']:.1f} KiB each")
    finally:
        clients.ask({"cmd": "close"})
        bench.stack.stop(clients)
        bench.stack.stop(web)
    floor_users = users[: QUICK_FLOOR_SOCKETS if bench.quick else FLOOR_SOCKETS]
    floor = []
    for kind in FLOOR_KINDS:
        floor.append(_floor(bench, kind, floor_users))
        bench.log(f"  floor, {kind}: {floor[-1]['kib_per_connection']:.1f} KiB each")
    return {"async_mode": "eventlet", "levels": rows, "floor": floor}


def _floor(bench: Bench, kind: str, users: list[tuple[int, str]]) -> dict[str, Any]:
    port = free_port()
    server = bench.stack.child(f"floor-{kind}-{port}", [PYTHON, "bench/floor_server.py", kind, str(port)])
    url = f"http://127.0.0.1:{port}"
    clients = bench.raw_clients(f"rawclients-floor-{kind}")
    try:
        wait_for(lambda: healthy(url) or not server.alive(), 30, f"the {kind} floor server")
        if not server.alive():
            raise RuntimeError(f"floor server exited:\n{server.log()}")
        # The layers under the product take up the offer of compression; not offered here.
        bench.connect_raw(clients, url, users[:WARMUP_CLIENTS], offer_deflate=False)
        clients.ask({"cmd": "close"})
        time.sleep(0.5)
        baseline = rss_kib(server.pid)
        connected = bench.connect_raw(clients, url, users, offer_deflate=False)["connected"]
        time.sleep(0.5)
        rss = rss_kib(server.pid)
    finally:
        clients.ask({"cmd": "close"})
        bench.stack.stop(clients)
        bench.stack.stop(server)
    return {
        "kind": kind,
        "connected": connected,
        "kib_per_connection": (rss - baseline) / connected if connected else None,
    }


FLOOR_LABELS = {
    "websocket": "eventlet WebSocket only",
    "socketio": "+ python-socketio, engine.io's sockets",
    "socketio-lean": "+ python-socketio, app.lean_socket",
}


def show(result: dict[str, Any]) -> str:
    levels = table(
        "connections: idle sockets held by one web process (eventlet)",
        [
            "target",
            "held",
            "KiB/conn",
            "RSS MiB",
            "idle CPU %",
            "1st evt p50 ms",
            "p99 ms",
            "max ms",
        ],
        [
            [
                r["target"],
                r["connected"],
                r["kib_per_connection"],
                r["rss_kib"] / 1024,
                r["idle_cpu_percent"],
                r["first_event"]["p50_ms"],
                r["first_event"]["p99_ms"],
                r["first_event"]["max_ms"],
            ]
            for r in result["levels"]
        ],
    )
    first = result["levels"][0]
    floor = table(
        "connections: the floor, KiB per idle socket of each layer under the product (eventlet)",
        ["server", "sockets", "KiB/conn"],
        [[FLOOR_LABELS[f["kind"]], f["connected"], f["kib_per_connection"]] for f in result.get("floor", [])]
        + [["the product (run.py)", first["connected"], first["kib_per_connection"]]],
    )
    return levels + "\n" + floor
