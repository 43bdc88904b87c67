"""Nothing lost, nothing twice, with real processes: a client that was away resumes from its last seq."""

from __future__ import annotations

import queue

import pytest
import requests
import socketio

from tests.support import wait_for

pytestmark = pytest.mark.e2e


class Recorder:
    def __init__(
        self, url: str, auth: dict, transports: list[str] | None = None, headers: dict | None = None
    ) -> None:
        self.events: queue.Queue[tuple[str, dict]] = queue.Queue()
        self.sio = socketio.Client(reconnection=False)
        for name in ("welcome", "task_progress", "resync", "session_ended"):
            self.sio.on(name, lambda data, name=name: self.events.put((name, data)))
        self.sio.connect(
            url, auth=auth, transports=transports or ["websocket"], headers=headers or {}, wait_timeout=10
        )

    def until(self, predicate, timeout: float = 30) -> list[tuple[str, dict]]:
        got = []
        while True:
            got.append(self.events.get(timeout=timeout))
            if predicate(*got[-1]):
                return got


def test_a_client_that_was_away_gets_exactly_the_missed_events_once(live_stack):
    token = live_stack.create_user("alice")
    first = Recorder(live_stack.base_url, {"token": token})
    task = live_stack.start_task(token, "example_long_task", steps=30, delay=0.05)
    seen = first.until(lambda name, data: name == "task_progress" and data["step"] >= 5)
    first.sio.disconnect()
    last_seq = max(data["seq"] for name, data in seen if name == "task_progress" and not data["volatile"])

    headers = {"Authorization": f"Bearer {token}"}
    wait_for(
        lambda: (
            requests.get(f"{live_stack.base_url}/api/tasks/{task['id']}", headers=headers, timeout=5).json()[
                "step"
            ]
            >= 15
        ),
        30,
        "the task to move on while the client is away",
    )
    second = Recorder(live_stack.base_url, {"token": token, "last_seq": last_seq})
    try:
        got = second.until(lambda name, data: name == "task_progress" and data["status"] == "succeeded")
    finally:
        second.sio.disconnect()
    assert got[0][0] == "welcome"
    resumed = [data["seq"] for name, data in got if name == "task_progress" and not data["volatile"]]
    assert resumed == list(range(last_seq + 1, resumed[-1] + 1)), "every missed stored event, in order, once"
    steps = [data["step"] for name, data in got if name == "task_progress" and data["status"] == "running"]
    assert steps == sorted(steps) and steps[-1] == 30


def test_revoking_a_token_ends_its_socket(live_stack):
    token = live_stack.create_user("alice")
    client = Recorder(live_stack.base_url, {"token": token})
    client.until(lambda name, data: name == "welcome")
    r = requests.delete(
        f"{live_stack.base_url}/api/tokens", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert r.status_code == 204
    assert client.until(lambda name, data: name == "session_ended")[-1] == (
        "session_ended",
        {"reason": "token_revoked"},
    )
    wait_for(lambda: not client.sio.connected, 10, "the server to disconnect the socket")
