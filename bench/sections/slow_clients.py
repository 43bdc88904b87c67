"""Stalled clients: the web process's memory, and delivery to everyone else, while some stop reading.

One eventlet web process; 4 clients that read (a user each) and 1 that stops reading once
connected (``transport.pause_reading()``: a frozen tab, a link gone dead but not yet
noticed). A publisher floods the channel with what reporting jobs publish, a stored event
then 9 volatile ticks, as fast as the node takes it; three quarters of it go to the
stalled user, so that its socket's kernel send buffer (up to 4 MiB) fills within the run. Measured
while it lasts: the web process's RSS growth, and the rate the reading clients receive.
Three cases: nobody stalled; stalled with ``MAX_SOCKET_BACKLOG`` as shipped (a lagging
socket's ticks are skipped); stalled with it off (0). ``STALLED_SOCKET_TIMEOUT`` (10 s) is
longer than the flood, so no socket is closed here: what is measured is what a stalled
client costs until then (tests/e2e/test_stalled_client.py covers the closing).
"""

from __future__ import annotations

import time
from typing import Any

from bench.core import Bench
from bench.support import PYTHON, rss_kib, table

READERS = 4
STALLED = 1
TICKS_PER_STORE = 9
SHIPPED = 100


def _case(bench: Bench, stalled: int, max_backlog: int, seconds: float) -> dict[str, Any]:
    users = bench.stack.ensure_users(READERS + STALLED)
    readers_users, stalled_users = users[:READERS], users[READERS : READERS + stalled]
    name = f"slow-{stalled}-{max_backlog}"
    web = bench.stack.start_web("eventlet", env={"MAX_SOCKET_BACKLOG": str(max_backlog)}, name=f"web-{name}")
    readers = bench.raw_clients(f"readers-{name}")
    stallers = bench.raw_clients(f"stalled-{name}")
    publisher = bench.stack.child(f"publisher-{name}", [PYTHON, "-m", "bench.publisher"], commands=True)
    try:
        for clients, group in ((readers, readers_users), (stallers, stalled_users)):
            if group and bench.connect_raw(clients, web.url, group)["connected"] != len(group):
                raise RuntimeError(f"not every client of {name} connected")
        stallers.ask({"cmd": "stall"})
        # The stalled user appears 3 x READERS times in the rotation: 3/4 of the flood is theirs.
        user_ids = [uid for uid, _token in readers_users + stalled_users * 3 * READERS]
        after = bench.stack.last_seqs(sorted(set(user_ids)))
        publisher.ask(
            {
                "cmd": "prepare",
                "user_ids": user_ids,
                "count": 20_000,
                "after": after,
                "ticks_per_store": TICKS_PER_STORE,
            },
            timeout=120,
        )
        time.sleep(0.5)
        rss_before = rss_kib(web.pid)
        start = readers.ask({"cmd": "count"})
        readers_share = len(readers_users) / len(user_ids)
        sent = publisher.ask({"cmd": "run", "duration": seconds}, timeout=seconds * 3 + 30)
        end = readers.ask({"cmd": "count"})
        rss_after = rss_kib(web.pid)
    finally:
        for child in (readers, stallers):
            child.ask({"cmd": "close"})
            bench.stack.stop(child)
        bench.stack.stop(publisher)
        bench.stack.stop(web)
    published_per_s = sent["published"] / sent["seconds"]
    received_per_s = (end["progress"] - start["progress"]) / (end["t"] - start["t"])
    return {
        "stalled": stalled,
        "max_socket_backlog": max_backlog,
        "published_per_s": published_per_s,
        "readers_published_per_s": published_per_s * readers_share,
        "readers_received_per_s": received_per_s,
        # Below 1, the reading clients fall behind what is published for them.
        "readers_keep_up": received_per_s / (published_per_s * readers_share),
        "rss_growth_kib": rss_after - rss_before,
        "seconds": sent["seconds"],
    }


def run(bench: Bench) -> dict[str, Any]:
    seconds = 1.5 if bench.quick else 3.0
    cases = [(0, SHIPPED), (STALLED, SHIPPED), (STALLED, 0)]
    rows = [_case(bench, stalled, backlog, seconds) for stalled, backlog in cases]
    for row in rows:
        bench.log(
            f"  {row['stalled']} stalled, MAX_SOCKET_BACKLOG={row['max_socket_backlog']}: "
            f"readers {row['readers_received_per_s']:.0f}/s, RSS +{row['rss_growth_kib'] / 1024:.1f} MiB"
        )
    return {"readers": READERS, "ticks_per_store": TICKS_PER_STORE, "cases": rows}


def show(result: dict[str, Any]) -> str:
    return table(
        f"slow_clients: {result['readers']} reading clients, a flood of 1 stored event + "
        f"{result['ticks_per_store']} ticks (eventlet)",
        [
            "stalled",
            "MAX_SOCKET_BACKLOG",
            "published/s",
            "for readers/s",
            "readers got/s",
            "kept up",
            "RSS growth MiB",
        ],
        [
            [
                r["stalled"],
                r["max_socket_backlog"],
                r["published_per_s"],
                r["readers_published_per_s"],
                r["readers_received_per_s"],
                r["readers_keep_up"],
                r["rss_growth_kib"] / 1024,
            ]
            for r in result["cases"]
        ],
    )
