"""Redis away and back empty, with real processes: a private redis-server SIGKILLed and started again.

What the user and the operator see: the running task and the queued one both succeed, the
same worker process serves before and after and is registered again, readiness and the
worker's health check recover, a socket that never disconnected got every stored event once
and in order, and while Redis is away the web node answers from the database.
"""

from __future__ import annotations

import queue
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import socketio
from redis import Redis
from rq import Worker

from tests.conftest import csrf_token
from tests.support import ROOT, RedisServer, wait_for

pytestmark = pytest.mark.e2e

FINAL = {"succeeded", "failed", "cancelled"}
# Generous: a loaded 2-core machine, a watchdog tick, a lease period.
RECOVERY = 30


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    try:
        yield server
    finally:
        server.stop()


# The stack of tests/e2e/conftest.py, on this test's own Redis instead of the shared one.
@pytest.fixture
def redis_url(private_redis: RedisServer) -> str:
    return private_redis.url


@pytest.fixture
def redis(redis_url: str) -> Iterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def live_stack_env() -> dict[str, str]:
    # A shorter lease keeps the test short; the watchdog's rules are the same at any length.
    return {"WORKER_LOST_AFTER": "6"}


class Recorder:
    """A socket client that must never be disconnected: it records every event it is sent."""

    def __init__(self, url: str, token: str) -> None:
        self.events: queue.Queue[tuple[str, dict]] = queue.Queue()
        self.disconnects = 0
        self.sio = socketio.Client(reconnection=False)
        self.sio.on("task_progress", lambda data: self.events.put(("task_progress", data)))
        self.sio.on("disconnect", self._disconnected)
        self.sio.connect(url, auth={"token": token}, transports=["websocket"], wait_timeout=10)

    def _disconnected(self, *_args: object) -> None:
        self.disconnects += 1

    def stored(self) -> list[dict]:
        got = []
        while not self.events.empty():
            _name, data = self.events.get_nowait()
            if not data["volatile"]:
                got.append(data)
        return got


class Api:
    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str) -> requests.Response:
        return requests.get(f"{self.base_url}/api{path}", headers=self.headers, timeout=10)

    def post(self, path: str, body: dict) -> requests.Response:
        return requests.post(f"{self.base_url}/api{path}", json=body, headers=self.headers, timeout=10)

    def task(self, task_id: str) -> dict:
        return self.get(f"/tasks/{task_id}").json()


def _outage_mid_task(live_stack, private_redis: RedisServer, outage: float) -> tuple[Api, list[str]]:
    """One task running and one queued behind it when Redis is SIGKILLed, then started again empty."""
    token = live_stack.create_user("alice")
    api = Api(live_stack.base_url, token)
    steps = int(outage) + 8
    running = live_stack.start_task(token, "example_long_task", steps=steps, delay=1.0)["id"]
    queued = live_stack.start_task(token, "example_long_task", steps=3, delay=0.2)["id"]
    wait_for(lambda: api.task(running)["step"] >= 2, 30, "the first task to make progress")
    assert api.task(queued)["status"] == "queued"

    private_redis.kill()
    before = api.task(running)["step"]
    time.sleep(outage)
    # Reads come from the database while Redis is away, and the job's reports still commit.
    during = api.task(running)
    assert during["status"] == "running"
    assert during["step"] > before, "progress is committed while Redis is away"
    # A cancel request needs Redis: refused with the queue's 503, never a 500; the task goes on.
    r = api.post(f"/tasks/{running}/cancel", {})
    assert r.status_code == 503 and "job queue is unavailable" in r.json()["error"], r.text
    private_redis.start()

    for task_id in (running, queued):
        wait_for(lambda t=task_id: api.task(t)["status"] in FINAL, steps + 90, f"task {task_id} to end")
    return api, [running, queued]


def _worker_health(env: dict[str, str]) -> int:
    return subprocess.run(
        [sys.executable, "-m", "worker.health"], cwd=ROOT, env=env, capture_output=True, check=False
    ).returncode


def _ready(base_url: str) -> bool:
    return requests.get(f"{base_url}/readyz", timeout=10).status_code == 200


@pytest.mark.parametrize("outage", [2, 20])
def test_a_redis_restart_loses_no_task_and_no_worker(live_stack, private_redis, redis, outage):
    worker = next(p for p in live_stack.processes if p.name == "worker")
    api, task_ids = _outage_mid_task(live_stack, private_redis, outage)

    for task_id in task_ids:
        task = api.task(task_id)
        assert (task["status"], task["error"], task["attempt"]) == ("succeeded", None, 1), task
    # The same worker process ran both, and is registered again: as RQ, /readyz and the
    # container's health check see it.
    assert worker.alive(), worker.log()
    queue_name = live_stack.env["TASK_QUEUE"]
    wait_for(
        lambda: (
            [w.pid for w in Worker.all(connection=redis) if queue_name in w.queue_names()] == [worker.pid]
        ),
        RECOVERY,
        "the worker to be registered again",
    )
    wait_for(lambda: _ready(live_stack.base_url), RECOVERY, "/readyz to answer 200 again")
    wait_for(lambda: _worker_health(live_stack.env) == 0, RECOVERY, "python -m worker.health to pass again")

    log = worker.log()
    assert "unhandled exception" not in log
    # One line when Redis goes away and one when it is back (from the worker, its work horse
    # and its scheduler process), never a traceback per try.
    assert log.count("Redis unreachable") <= 2, log
    assert log.count("scheduler: Redis does not answer") <= 1, log
    assert log.count("Redis answers again") <= 3, log
    assert "Traceback" not in log, log


@pytest.mark.parametrize("outage", [2, 20])
def test_a_socket_that_stays_connected_gets_every_stored_event_once_in_order(
    live_stack, private_redis, outage
):
    token = live_stack.create_user("bob")
    client = Recorder(live_stack.base_url, token)
    try:
        api = Api(live_stack.base_url, token)
        steps = int(outage) + 8
        running = live_stack.start_task(token, "example_long_task", steps=steps, delay=1.0)["id"]
        queued = live_stack.start_task(token, "example_long_task", steps=3, delay=0.2)["id"]
        wait_for(lambda: api.task(running)["step"] >= 2, 30, "the first task to make progress")
        private_redis.kill()
        time.sleep(outage)
        private_redis.start()
        for task_id in (running, queued):
            wait_for(lambda t=task_id: api.task(t)["status"] in FINAL, steps + 90, f"task {task_id} to end")
        stored = api.get("/notifications?since=0").json()["events"]
        expected = [e["data"]["seq"] for e in stored if e["event"] == "task_progress"]
        wait_for(
            lambda: client.events.qsize() and client.events.queue[-1][1]["seq"] >= expected[-1],
            RECOVERY,
            "the last stored event to reach the socket",
        )
        time.sleep(1)  # anything pushed twice would arrive now
        received = client.stored()
    finally:
        client.sio.disconnect()
    assert client.disconnects <= 1  # the one above
    assert [e["seq"] for e in received] == expected, "every stored event, once, in order"
    assert [e["status"] for e in received if e["task_id"] == running][-1] == "succeeded"
    assert [e["status"] for e in received if e["task_id"] == queued][-1] == "succeeded"


def _browser_session(base_url: str, username: str) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{base_url}/auth/login", timeout=10).text
    r = session.post(
        f"{base_url}/auth/login",
        data={"csrf_token": csrf_token(page), "username": username, "password": "correct horse"},
        timeout=10,
    )
    assert r.status_code == 200 and "Background tasks" in r.text, r.text
    return session


def test_while_redis_is_away_the_web_node_serves_from_the_database(live_stack, private_redis):
    token = live_stack.create_user("carol")
    api = Api(live_stack.base_url, token)
    done = live_stack.start_task(token, "example_long_task", steps=1, delay=0)["id"]
    wait_for(lambda: api.task(done)["status"] in FINAL, 30, "a first task to end")
    subprocess.run(
        [sys.executable, "-m", "flask", "make-admin", "carol"], cwd=ROOT, env=live_stack.env, check=True
    )
    browser = _browser_session(live_stack.base_url, "carol")
    last_seq = api.get("/notifications?since=0").json()["last_seq"]
    private_redis.kill()

    # Starting a task: a clear 503 from the API and from the page's form, and nothing stored.
    r = api.post("/tasks", {"name": "example_long_task", "params": {"steps": 1}})
    assert r.status_code == 503
    assert "job queue is unavailable" in r.json()["error"]
    page = browser.get(f"{live_stack.base_url}/", timeout=10)
    assert page.status_code == 200
    r = browser.post(
        f"{live_stack.base_url}/tasks",
        data={"csrf_token": csrf_token(page.text), "name": "example_long_task", "steps": "1", "delay": "0"},
        headers={"Accept": "application/json"},
        timeout=10,
    )
    assert r.status_code == 503
    assert "job queue is unavailable" in r.json()["error"]
    assert [t["id"] for t in api.get("/tasks").json()] == [done], "no phantom task is left behind"
    assert api.get("/notifications?since=0").json()["last_seq"] == last_seq, "and no event"

    # Pages and reads answer from the database.
    for path in ("/", "/tasks", "/admin/"):
        assert browser.get(f"{live_stack.base_url}{path}", timeout=10).status_code == 200, path
    assert "Redis does not answer" in browser.get(f"{live_stack.base_url}/admin/", timeout=10).text
    for path in ("/tasks", f"/tasks/{done}", "/notifications?since=0", "/task-types"):
        assert api.get(path).status_code == 200, path
    r = requests.get(f"{live_stack.base_url}/readyz", timeout=10)
    assert r.status_code == 503 and r.json()["checks"]["redis"]["ok"] is False

    time.sleep(5)  # long enough for an idle worker to have tried Redis again and again
    private_redis.start()

    # The idle worker is registered again and takes the next task.
    wait_for(lambda: _ready(live_stack.base_url), RECOVERY, "/readyz to answer 200 again")
    r = api.post("/tasks", {"name": "example_long_task", "params": {"steps": 1, "delay": 0}})
    assert r.status_code == 202, r.text
    wait_for(lambda: api.task(r.json()["id"])["status"] == "succeeded", RECOVERY, "the next task to succeed")
    worker = next(p for p in live_stack.processes if p.name == "worker")
    assert worker.alive()
    log = worker.log()
    assert "Traceback" not in log and log.count("Redis unreachable") == 1, log
