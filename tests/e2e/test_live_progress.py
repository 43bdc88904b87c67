"""The whole push path with real processes: API -> RQ worker -> Redis pub/sub -> Socket.IO client."""

from __future__ import annotations

import queue

import pytest
import requests
import socketio

from tests.support import wait_for

pytestmark = pytest.mark.e2e


class Refused(Exception):
    pass


class Listener:
    """A python-socketio client that records every task_progress event it receives."""

    def __init__(self, url: str, auth: dict | None) -> None:
        self.events: queue.Queue[dict] = queue.Queue()
        self.received: list[dict] = []
        self.refusals: list[object] = []
        self.sio = socketio.Client(reconnection=False)
        self.sio.on("task_progress", self.events.put)
        self.sio.on("connect_error", self.refusals.append)
        try:
            self.sio.connect(url, auth=auth, transports=["websocket"], wait_timeout=10)
        except socketio.exceptions.ConnectionError as exc:
            raise Refused(self.refusals) from exc

    def until_finished(self, task_id: str, timeout: float = 30) -> list[dict]:
        while True:
            event = self.events.get(timeout=timeout)
            self.received.append(event)
            if event["task_id"] == task_id and event["status"] in ("succeeded", "failed", "cancelled"):
                return [e for e in self.received if e["task_id"] == task_id]

    def close(self) -> None:
        self.sio.disconnect()


# eventlet is the default; the code must not depend on it, so the other modes run the same path.
@pytest.mark.parametrize("live_stack", ["eventlet", "gevent", "threading"], indirect=True)
def test_owner_receives_every_step_in_order_and_nobody_else_does(live_stack):
    alice = live_stack.create_user("alice")
    bob = live_stack.create_user("bob")
    alice_client = Listener(live_stack.base_url, {"token": alice})
    bob_client = Listener(live_stack.base_url, {"token": bob})
    try:
        task = live_stack.start_task(alice, "example_long_task", steps=5, delay=0.1)
        events = alice_client.until_finished(task["id"])

        assert [e["status"] for e in events][-1] == "succeeded", live_stack.logs()
        steps = [e for e in events if e["status"] == "running" and e["total"]]
        assert [e["step"] for e in steps] == [0, 1, 2, 3, 4, 5]
        assert [e["progress"] for e in steps] == [0, 20, 40, 60, 80, 100]
        assert events[-1]["progress"] == 100
        stored = [e["seq"] for e in events if not e["volatile"]]
        assert stored == sorted(set(stored)), "stored events: seq strictly increases"
        assert [e["seq"] for e in events] == sorted(e["seq"] for e in events), (
            "ticks carry the last stored seq"
        )
        assert all(e["ts"] > 0 and e["name"] == "example_long_task" for e in events)
        for key in ("task_id", "name", "status", "progress", "step", "total", "message", "seq", "ts"):
            assert key in events[-1]

        # Bob's socket stayed open through the whole task and heard none of it.
        assert bob_client.events.empty()
        assert bob_client.sio.connected
    finally:
        alice_client.close()
        bob_client.close()


def test_unauthenticated_and_bad_token_connections_are_refused(live_stack):
    for auth in (None, {"token": "not-a-token"}, {"room": "user:1"}):
        with pytest.raises(Refused) as info:
            Listener(live_stack.base_url, auth)
        assert info.value.args[0] == [{"message": "authentication required"}]


def test_a_client_that_connects_mid_task_gets_the_current_state_then_live_events(live_stack):
    alice = live_stack.create_user("alice")
    task = live_stack.start_task(alice, "example_long_task", steps=20, delay=0.1)
    live_stack.start_task(alice, "example_long_task", steps=2, delay=0.01)

    def running_step():
        r = requests.get(
            f"{live_stack.base_url}/api/tasks/{task['id']}",
            headers={"Authorization": f"Bearer {alice}"},
            timeout=5,
        )
        return r.json()["step"] >= 3

    wait_for(running_step, 20, "the task to pass step 3")
    late = Listener(live_stack.base_url, {"token": alice})
    try:
        events = late.until_finished(task["id"])
        first = events[0]
        assert first["status"] == "running" and first["step"] >= 3, "the snapshot comes first"
        assert events[-1]["status"] == "succeeded"
        assert [e["step"] for e in events] == sorted(e["step"] for e in events)
    finally:
        late.close()
