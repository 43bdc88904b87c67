"""Two web nodes and two workers on one Redis and one database: every event exactly once, across a node loss."""

from __future__ import annotations

import signal

import pytest
import requests

from tests.e2e.test_resume import Recorder
from tests.support import free_port, wait_for

pytestmark = pytest.mark.e2e

FINAL = ("succeeded", "failed", "cancelled")


def test_events_reach_the_client_on_the_other_node_exactly_once_and_survive_its_loss(live_stack):
    port_b = free_port()
    node_b = live_stack.start_web("web-b", port=port_b)
    live_stack.start_worker("worker-2")
    url_b = f"http://127.0.0.1:{port_b}"

    token = live_stack.create_user("alice")
    on_b = Recorder(url_b, {"token": token})
    welcome = on_b.until(lambda name, data: name == "welcome")[-1][1]

    # Started through node A, run by either worker, heard on node B.
    ids = [live_stack.start_task(token, "example_long_task", steps=20, delay=0.05)["id"] for _ in range(3)]
    got = on_b.until(lambda name, data: name == "task_progress" and data["step"] >= 8)

    node_b.signal(signal.SIGKILL)
    wait_for(lambda: not on_b.sio.connected, 15, "the client to notice node B is gone")
    while not on_b.events.empty():
        got.append(on_b.events.get_nowait())
    seqs = [data["seq"] for name, data in got if name == "task_progress" and not data["volatile"]]
    assert seqs == list(range(welcome["last_seq"] + 1, seqs[-1] + 1)), "every stored event once, none lost"
    ticks = [(d["task_id"], d["step"]) for name, d in got if name == "task_progress" and d["volatile"]]
    assert len(ticks) == len(set(ticks)), "every tick once"

    # The client moves to node A and resumes from its last seq.
    on_a = Recorder(live_stack.base_url, {"token": token, "last_seq": seqs[-1]})
    finished: set[str] = set()

    def all_finished(name: str, data: dict) -> bool:
        if name == "task_progress" and data["status"] in FINAL:
            finished.add(data["task_id"])
        return finished == set(ids)

    try:
        rest = on_a.until(all_finished, timeout=60)
    finally:
        on_a.sio.disconnect()
    more = [data["seq"] for name, data in rest if name == "task_progress" and not data["volatile"]]
    assert more == list(range(seqs[-1] + 1, more[-1] + 1)), (
        "resumed on the other node without a gap or a repeat"
    )
    statuses = {data["task_id"]: data["status"] for name, data in [*got, *rest] if name == "task_progress"}
    assert statuses == dict.fromkeys(ids, "succeeded")


def test_sigterm_stops_a_web_node_cleanly(live_stack):
    token = live_stack.create_user("alice")
    web = next(p for p in live_stack.processes if p.name == "web")
    client = Recorder(live_stack.base_url, {"token": token})
    client.until(lambda name, data: name == "welcome")
    web.signal(signal.SIGTERM)
    assert web.popen.wait(15) == 0, web.log()
    wait_for(lambda: not client.sio.connected, 10, "the socket to close")


def test_readyz_sees_the_workers(live_stack):
    body = requests.get(f"{live_stack.base_url}/readyz", timeout=5).json()
    assert body["status"] == "ready"
    assert body["checks"]["workers"]["count"] >= 1
