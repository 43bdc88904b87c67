"""How tasks end, with real web and worker processes: cancel, timeout, crashed and stopped workers, limits."""

from __future__ import annotations

import os
import signal
import time

import pytest
import requests

from tests.e2e.test_live_progress import Listener

pytestmark = pytest.mark.e2e

FINAL = ("succeeded", "failed", "cancelled")


@pytest.fixture
def live_stack_env() -> dict[str, str]:
    # Short bounds so that a lost worker and an ignored cancel are noticed within seconds.
    return {
        "WORKER_LOST_AFTER": "3",
        "WATCHDOG_INTERVAL": "1",
        "CANCEL_GRACE": "2",
        "TASK_TIMEOUTS": "compute_primes=2",
        "MAX_ACTIVE_TASKS_PER_USER": "4",
    }


class User:
    def __init__(self, stack, name: str) -> None:
        self.stack = stack
        self.token = stack.create_user(name)
        self.headers = {"Authorization": f"Bearer {self.token}"}
        self.events = Listener(stack.base_url, {"token": self.token})

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(
            method, f"{self.stack.base_url}/api{path}", headers=self.headers, timeout=10, **kwargs
        )

    def start(self, name: str, **params) -> str:
        response = self.api("POST", "/tasks", json={"name": name, "params": params})
        assert response.status_code == 202, response.text
        return response.json()["id"]

    def wait_until(self, task_id: str, predicate, timeout: float = 30) -> dict:
        # An event for this task may already have arrived while waiting for another one.
        for event in self.history(task_id):
            if predicate(event) and event["status"] in FINAL:
                return event
        deadline = time.monotonic() + timeout
        while True:
            event = self.events.events.get(timeout=max(0.1, deadline - time.monotonic()))
            self.events.received.append(event)
            if event["task_id"] == task_id and predicate(event):
                return event

    def history(self, task_id: str) -> list[dict]:
        return [e for e in self.events.received if e["task_id"] == task_id]


@pytest.fixture
def alice(live_stack):
    user = User(live_stack, "alice")
    yield user
    user.events.close()


def test_compute_primes_reports_work_done_and_the_result(alice):
    task_id = alice.start("compute_primes", limit=10_000_000)
    final = alice.wait_until(task_id, lambda e: e["status"] in FINAL)
    assert final["status"] == "succeeded", final
    assert final["result"] == {"limit": 10_000_000, "count": 664579, "largest": 9999991}
    progress = [e["progress"] for e in alice.history(task_id)]
    assert progress == sorted(progress) and progress[-1] == 100


def test_cancel_a_queued_task_and_then_the_running_one(alice):
    running = alice.start("example_long_task", steps=100, delay=0.1)
    alice.wait_until(running, lambda e: e["status"] == "running")
    queued = alice.start("example_long_task", steps=3, delay=0)  # one worker: waits behind the first

    response = alice.api("POST", f"/tasks/{queued}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"

    response = alice.api("POST", f"/tasks/{running}/cancel")
    assert response.status_code == 202
    asked = time.monotonic()
    final = alice.wait_until(running, lambda e: e["status"] in FINAL, timeout=10)
    assert final["status"] == "cancelled"
    assert time.monotonic() - asked < 5, "a running task stops within about a second"

    assert alice.api("POST", f"/tasks/{running}/cancel").status_code == 409
    assert alice.api("POST", f"/tasks/{queued}/cancel").json() == {"error": "task is already cancelled"}
    # The cancelled queued task never ran, even after the worker became free.
    alice.start("example_long_task", steps=1, delay=0)
    assert "running" not in [e["status"] for e in alice.history(queued)]
    assert alice.api("GET", f"/tasks/{queued}").json()["started_at"] is None


def test_cancel_interrupts_a_long_wait_inside_a_step(alice):
    task_id = alice.start("example_long_task", steps=1, delay=5)
    alice.wait_until(task_id, lambda e: e["status"] == "running")
    assert alice.api("POST", f"/tasks/{task_id}/cancel").status_code == 202
    asked = time.monotonic()
    final = alice.wait_until(task_id, lambda e: e["status"] in FINAL, timeout=15)
    assert final["status"] == "cancelled"
    assert time.monotonic() - asked < 3


def test_a_task_past_its_timeout_ends_failed_timed_out(alice):
    task_id = alice.start("compute_primes", limit=3_000_000_000)
    final = alice.wait_until(task_id, lambda e: e["status"] in FINAL, timeout=30)
    assert final["status"] == "failed"
    assert final["error"] == "The task timed out after 2 seconds."
    assert "Traceback" not in str(alice.history(task_id))


def test_a_killed_worker_does_not_leave_its_task_running(alice, live_stack):
    task_id = alice.start("example_long_task", steps=100, delay=0.1)
    alice.wait_until(task_id, lambda e: e["status"] == "running" and e["step"] >= 3)
    worker = next(p for p in live_stack.processes if p.name == "worker")
    for pid in [worker.pid, *worker.descendants()]:
        os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()

    final = alice.wait_until(task_id, lambda e: e["status"] in FINAL, timeout=60)
    assert final["status"] == "failed"
    assert final["error"] == "The worker running this task stopped unexpectedly."
    assert time.monotonic() - killed < 20  # WORKER_LOST_AFTER=3 plus a watchdog tick or two

    # A new worker takes new work; the lost task stays failed.
    live_stack.start_worker("worker-2")
    second = alice.start("example_long_task", steps=2, delay=0)
    assert alice.wait_until(second, lambda e: e["status"] in FINAL)["status"] == "succeeded"
    assert alice.api("GET", f"/tasks/{task_id}").json()["status"] == "failed"


def test_sigterm_lets_the_current_job_finish(alice, live_stack):
    task_id = alice.start("example_long_task", steps=10, delay=0.2)
    alice.wait_until(task_id, lambda e: e["status"] == "running" and e["step"] >= 2)
    worker = next(p for p in live_stack.processes if p.name == "worker")
    os.kill(worker.pid, signal.SIGTERM)
    final = alice.wait_until(task_id, lambda e: e["status"] in FINAL)
    assert final["status"] == "succeeded"
    worker.popen.wait(15)


def test_per_type_and_per_user_limits(alice, live_stack):
    ids = [alice.start("example_long_task", steps=50, delay=0.1) for _ in range(3)]
    response = alice.api("POST", "/tasks", json={"name": "example_long_task"})
    assert response.status_code == 409
    assert response.json()["running_task_id"] == ids[0]
    assert ids[0] in response.json()["error"]

    ids.append(alice.start("compute_primes", limit=1000))  # the fourth: waits behind the others
    response = alice.api("POST", "/tasks", json={"name": "export_posts"})
    assert response.status_code == 429
    assert "4 tasks queued or running" in response.json()["error"]

    for task_id in ids:
        alice.api("POST", f"/tasks/{task_id}/cancel")
    for task_id in ids:
        alice.wait_until(task_id, lambda e: e["status"] in FINAL, timeout=15)
    assert alice.api("POST", "/tasks", json={"name": "export_posts"}).status_code == 202


def test_other_users_task_ids_are_not_found(alice, live_stack):
    task_id = alice.start("example_long_task", steps=1, delay=0)
    alice.wait_until(task_id, lambda e: e["status"] in FINAL)
    bob = User(live_stack, "bob")
    try:
        for method, path in (("GET", ""), ("POST", "/cancel"), ("GET", "/result")):
            response = bob.api(method, f"/tasks/{task_id}{path}")
            assert response.status_code == 404
            assert response.json() == {"error": "task not found"}
    finally:
        bob.events.close()
