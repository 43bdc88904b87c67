"""Delivered events/s per web process at saturation, beside a bare python-socketio server's ceiling.

Product: a publisher process puts N pre-encoded channel messages on Redis back to back
(Redis queues what the node has not read yet); delivered/s is N over the time from the
first publish to the last receipt. Ceiling: ``bench/bare_server.py`` in the same async
mode emits N payloads of the same shape to the same number of clients; same formula.
Clients are ``bench.rawclients`` (light enough not to be the bottleneck).

Also measured, for the product only: the rate clients receive *while* publishing goes on
(bounded backlog, ``Publisher.run``), which shows whether delivery keeps flowing under a
sustained flood or waits until the flood stops.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import requests

from bench.core import Bench, CpuMeter, web_processes
from bench.stack import Web, healthy
from bench.support import PYTHON, Child, median, table
from tests.support import free_port, wait_for

CALIBRATION = 3000
MAX_BURST = 150_000


def _burst_size(rate: float, seconds: float) -> int:
    return int(min(MAX_BURST, max(CALIBRATION, rate * seconds)))


def measure_product(bench: Bench, web: Web, clients: int) -> dict[str, Any]:
    """Delivered/s of ``web`` with ``clients`` clients, one user each."""
    users = bench.stack.ensure_users(clients)
    user_ids = [uid for uid, _token in users]
    raw = bench.raw_clients(f"rawclients-{web.mode}-{clients}")
    publisher = bench.stack.child(
        f"publisher-{web.mode}-{clients}", [PYTHON, "-m", "bench.publisher"], commands=True
    )
    try:
        connected = bench.connect_raw(raw, web.url, users)
        if connected["connected"] != clients:
            raise RuntimeError(f"only {connected['connected']} of {clients} clients connected: {connected}")
        seconds = 1.0 if bench.quick else 1.5
        after = bench.stack.last_seqs(user_ids)
        publisher.ask({"cmd": "prepare", "user_ids": user_ids, "count": CALIBRATION, "after": after})
        rate = _product_burst(raw, publisher, CALIBRATION)["delivered_per_s"]
        bursts = []
        for _ in range(bench.runs):
            size = _burst_size(rate, seconds)
            publisher.ask({"cmd": "prepare", "user_ids": user_ids, "count": size}, timeout=300)
            meter = CpuMeter(web_processes(bench, web, clients=raw, publisher=publisher))
            bursts.append({**_product_burst(raw, publisher, size), "cpu_cores": meter.shares()})
        sustained = _sustained(raw, publisher, seconds)
        return {
            "clients": clients,
            "delivered_per_s": median(b["delivered_per_s"] for b in bursts),
            "sustained": sustained,
            "bursts": bursts,
        }
    finally:
        raw.ask({"cmd": "close"})
        bench.stack.stop(raw)
        bench.stack.stop(publisher)


def _product_burst(raw: Child, publisher: Child, size: int) -> dict[str, Any]:
    return _burst(raw, size, lambda: publisher.ask({"cmd": "burst", "count": size}, timeout=300)["start"])


def _burst(raw: Child, size: int, emit: Callable[[], float]) -> dict[str, Any]:
    """Start ``size`` events with ``emit`` (which returns when it started) and time their arrival."""
    before = raw.ask({"cmd": "count"})["progress"]
    start = emit()
    done = raw.ask({"cmd": "until", "field": "progress", "total": before + size, "timeout": 120}, timeout=180)
    delivered = done["progress"] - before
    elapsed = done["last"] - start
    return {
        "events": size,
        "delivered": delivered,
        "seconds": elapsed,
        "delivered_per_s": delivered / elapsed,
    }


def _sustained(raw: Child, publisher: Child, seconds: float) -> dict[str, Any]:
    """Publish continuously (backlog bounded) and count what arrives during the flood."""
    before = raw.ask({"cmd": "count"})
    publisher.send({"cmd": "run", "duration": seconds})
    time.sleep(seconds / 4)
    start = raw.ask({"cmd": "count"})
    time.sleep(seconds / 2)
    end = raw.ask({"cmd": "count"})
    sent = publisher.answer(seconds * 3 + 30)
    raw.ask(
        {"cmd": "until", "field": "progress", "total": before["progress"] + sent["published"], "timeout": 60},
        timeout=90,
    )
    return {
        "published_per_s": sent["published"] / sent["seconds"],
        "delivered_during_flood_per_s": (end["progress"] - start["progress"]) / (end["t"] - start["t"]),
    }


def measure_bare(bench: Bench, mode: str, clients: int) -> dict[str, Any]:
    users = bench.stack.ensure_users(clients)
    port = free_port()
    server = bench.stack.child(f"bare-{mode}-{port}", [PYTHON, "bench/bare_server.py", mode, str(port)])
    url = f"http://127.0.0.1:{port}"
    raw = bench.raw_clients(f"rawclients-bare-{mode}-{clients}")
    try:
        wait_for(lambda: healthy(url) or not server.alive(), 30, "the bare server")
        if not server.alive():
            raise RuntimeError(f"bare server exited:\n{server.log()}")
        # The bare server takes up an offer of compression, which the product declines.
        connected = bench.connect_raw(raw, url, users, offer_deflate=False)
        if connected["connected"] != clients:
            raise RuntimeError(
                f"only {connected['connected']} of {clients} clients connected to the bare server"
            )
        seconds = 1.0 if bench.quick else 1.5
        rate = _bare_burst(raw, url, CALIBRATION)["delivered_per_s"]
        bursts = []
        for _ in range(bench.runs):
            meter = CpuMeter({"bare": server.pid, "clients": raw.pid})
            bursts.append({**_bare_burst(raw, url, _burst_size(rate, seconds)), "cpu_cores": meter.shares()})
        return {
            "clients": clients,
            "delivered_per_s": median(b["delivered_per_s"] for b in bursts),
            "bursts": bursts,
        }
    finally:
        raw.ask({"cmd": "close"})
        bench.stack.stop(raw)
        bench.stack.stop(server)


def _bare_burst(raw: Child, url: str, size: int) -> dict[str, Any]:
    def emit() -> float:
        start = time.time()
        requests.get(f"{url}/emit", params={"count": size}, timeout=10)
        return start

    return _burst(raw, size, emit)


def compare(bench: Bench, mode: str, clients: int, web: Web | None = None) -> dict[str, Any]:
    """Product and ceiling for one mode and client count; starts its own web node unless given one."""
    own = web is None
    web = web or bench.stack.start_web(mode)
    try:
        product = measure_product(bench, web, clients)
    finally:
        if own:
            bench.stack.stop(web)
    bare = measure_bare(bench, mode, clients)
    return {
        "async_mode": mode,
        "clients": clients,
        "product_per_s": product["delivered_per_s"],
        "ceiling_per_s": bare["delivered_per_s"],
        "ratio": product["delivered_per_s"] / bare["delivered_per_s"],
        "delivered_during_flood_per_s": product["sustained"]["delivered_during_flood_per_s"],
        "product": product,
        "ceiling": bare,
    }


def run(bench: Bench) -> dict[str, Any]:
    counts = (1, 100) if bench.quick else (1, 1000)
    rows = []
    for clients in counts:
        rows.append(compare(bench, "eventlet", clients))
        row = rows[-1]
        bench.log(
            f"  throughput, {clients} clients: product {row['product_per_s']:.0f}/s, "
            f"ceiling {row['ceiling_per_s']:.0f}/s, ratio {row['ratio']:.2f}"
        )
    return {"async_mode": "eventlet", "points": rows}


def show(result: dict[str, Any]) -> str:
    return table(
        "throughput: delivered events/s per web process at saturation (eventlet)",
        ["clients", "product/s", "bare ceiling/s", "ratio", "during flood/s"],
        [
            [
                p["clients"],
                p["product_per_s"],
                p["ceiling_per_s"],
                p["ratio"],
                p["delivered_during_flood_per_s"],
            ]
            for p in result["points"]
        ],
    )
