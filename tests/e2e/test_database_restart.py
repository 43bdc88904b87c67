"""The database going away mid-task, with real processes: PostgreSQL stopped and started again.

The stack runs on a PostgreSQL server of the test's own (``private_postgres``), so this runs
the same on SQLite and PostgreSQL CI runs.
"""

from __future__ import annotations

import json
import queue
import time

import pytest
import requests
import sqlalchemy as sa
from rq.job import Job

from app.broker import SERIALIZER
from tests.conftest import csrf_token
from tests.e2e.test_live_progress import Listener
from tests.support import wait_for

pytestmark = pytest.mark.e2e

FINAL = ("succeeded", "failed", "cancelled")


@pytest.fixture
def database_url(private_postgres) -> str:
    return private_postgres.url


class Owner:
    """A user with a token, a socket that stays connected through the outage, and a logged-in browser session."""

    def __init__(self, stack, name: str) -> None:
        self.stack = stack
        self.token = stack.create_user(name)
        self.events = Listener(stack.base_url, {"token": self.token})
        self.arrived: list[tuple[float, dict]] = []
        self.browser = requests.Session()
        page = self.browser.get(f"{stack.base_url}/auth/login", timeout=10).text
        r = self.browser.post(
            f"{stack.base_url}/auth/login",
            data={"csrf_token": csrf_token(page), "username": name, "password": "correct horse"},
            timeout=10,
        )
        assert r.ok and "Log out" in r.text, r.text

    def api(self, path: str) -> requests.Response:
        return requests.get(
            f"{self.stack.base_url}/api{path}", headers={"Authorization": f"Bearer {self.token}"}, timeout=30
        )

    def drain(self, until=lambda event: False, timeout: float = 0.0) -> dict | None:
        """Record what arrived (with when); wait up to ``timeout`` for an event matching ``until``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                event = self.events.events.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                return None
            self.arrived.append((time.monotonic(), event))
            if until(event):
                return event

    def close(self) -> None:
        self.events.close()
        self.browser.close()


@pytest.fixture
def alice(live_stack):
    user = Owner(live_stack, "alice")
    yield user
    user.close()


def served_by(stack, task_id: str) -> int:
    """The PID of the worker that ran the task's job."""
    job = Job.fetch(task_id, connection=stack.redis, serializer=SERIALIZER)
    worker = next(w for w in stack._workers() if w.name == job.worker_name)
    return worker.pid


def stored_events(url: str, task_id: str) -> list[tuple[int, dict]]:
    """The task's events as stored, in the order they were inserted: (seq, payload)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT seq, payload FROM notifications ORDER BY id")).all()
    finally:
        engine.dispose()
    events = []
    for seq, payload in rows:
        payload = payload if isinstance(payload, dict) else json.loads(payload)
        if payload["task_id"] == task_id:
            events.append((seq, payload))
    return events


def assert_recorded_once_in_order(url: str, task_id: str, pushed: list[dict]) -> None:
    stored = stored_events(url, task_id)
    seqs = [seq for seq, _ in stored]
    assert seqs == sorted(set(seqs)), f"seqs strictly increase, no duplicates: {seqs}"
    assert all(payload["seq"] == seq for seq, payload in stored)
    statuses = [payload["status"] for _, payload in stored]
    assert statuses.count("succeeded") == 1 and statuses[-1] == "succeeded", statuses
    assert [payload["message"] for _, payload in stored].count("Started") == 1, "the start is recorded once"
    steps = [payload["step"] for _, payload in stored]
    assert steps == sorted(steps), steps
    # The socket that never disconnected got every stored event once, in order.
    assert [e["seq"] for e in pushed if not e["volatile"]] == seqs


def test_postgresql_restarted_mid_task(live_stack, alice, private_postgres):
    stack = live_stack
    worker = next(p for p in stack.processes if p.name == "worker")
    task_id = stack.start_task(alice.token, "example_long_task", steps=80, delay=0.25)["id"]
    wait_for(lambda: alice.api(f"/tasks/{task_id}").json()["step"] >= 4, 30, "the task to store a few steps")

    # First outage: everything the web node is asked meanwhile answers 503, and ticks go on.
    alice.drain(timeout=0.5)
    private_postgres.stop()
    stopped_at = time.monotonic()
    r = alice.api(f"/tasks/{task_id}")
    assert r.status_code == 503, r.text
    assert "database is unavailable" in r.json()["error"]
    page = alice.browser.get(f"{stack.base_url}/", timeout=30)
    assert page.status_code == 503 and "The database is unavailable" in page.text, page.text
    ready = requests.get(f"{stack.base_url}/readyz", timeout=30)
    assert ready.status_code == 503 and ready.json()["checks"]["database"]["ok"] is False, ready.text
    tick = alice.drain(lambda e: e["volatile"] and time.monotonic() - stopped_at > 1, timeout=10)
    assert tick is not None, "ticks keep flowing while the database is away"
    time.sleep(max(0.0, 3 - (time.monotonic() - stopped_at)))
    private_postgres.start()
    assert alice.api(f"/tasks/{task_id}").status_code == 200
    ready = requests.get(f"{stack.base_url}/readyz", timeout=30)
    assert ready.json()["checks"]["database"] == {"ok": True}, ready.text

    # Second outage, with nothing on the web node touching the database meanwhile (the test holds
    # the watchdog's lock): its pooled connections all died, and the first request after must work.
    stack.redis.set(f"{stack.env['TASK_QUEUE']}:watchdog", "test", px=60_000)
    alice.drain(timeout=0.5)
    private_postgres.stop()
    time.sleep(2)
    private_postgres.start()
    assert alice.api(f"/tasks/{task_id}").status_code == 200
    assert alice.browser.get(f"{stack.base_url}/", timeout=30).status_code == 200
    stack.redis.delete(f"{stack.env['TASK_QUEUE']}:watchdog")

    final = alice.drain(lambda e: e["task_id"] == task_id and e["status"] in FINAL, timeout=60)
    assert final is not None and final["status"] == "succeeded", (final, stack.logs())
    assert final["step"] == 80 and final["result"] == {"steps": 80}
    pushed = [e for _, e in alice.arrived if e["task_id"] == task_id]
    assert_recorded_once_in_order(private_postgres.url, task_id, pushed)

    # The same worker ran it through both outages, and still serves; one log line per change.
    assert worker.alive() and served_by(stack, task_id) == worker.pid
    log = worker.log()
    assert "Traceback" not in log, log
    assert log.count("the database is unavailable") == 2, log
    assert log.count("the database answers again") == 2, log
    assert stack.start_task(alice.token, "example_long_task", steps=1, delay=0)["status"] == "queued"
