"""SQLite's write lock held by another process mid-task, longer than the busy timeout (10 s).

The stack always gets a SQLite file of its own here, whatever TEST_DATABASE_URL says: the
lock is SQLite's.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from tests.e2e.test_database_restart import FINAL, Owner, assert_recorded_once_in_order, served_by
from tests.support import wait_for

pytestmark = pytest.mark.e2e

LOCK_SECONDS = 15


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'locked.db'}"


@pytest.fixture
def alice(live_stack):
    user = Owner(live_stack, "alice")
    yield user
    user.close()


def hold_write_lock(path: Path, seconds: float, taken: threading.Event) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        taken.set()
        time.sleep(seconds)
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def test_sqlite_write_lock_held_15_s_mid_task(live_stack, alice, database_url):
    stack = live_stack
    worker = next(p for p in stack.processes if p.name == "worker")
    task_id = stack.start_task(alice.token, "example_long_task", steps=80, delay=0.25)["id"]
    wait_for(lambda: alice.api(f"/tasks/{task_id}").json()["step"] >= 4, 30, "the task to store a few steps")

    path = Path(database_url.removeprefix("sqlite:///"))
    taken = threading.Event()
    holder = threading.Thread(target=hold_write_lock, args=(path, LOCK_SECONDS, taken))
    holder.start()
    try:
        assert taken.wait(10), "the test took the write lock"
        locked_at = time.monotonic()
        alice.drain(timeout=LOCK_SECONDS + 1)
    finally:
        holder.join()
    assert time.monotonic() - locked_at >= LOCK_SECONDS

    final = alice.drain(lambda e: e["task_id"] == task_id and e["status"] in FINAL, timeout=60)
    assert final is not None and final["status"] == "succeeded", (final, stack.logs())
    assert final["step"] == 80 and final["result"] == {"steps": 80}
    pushed = [e for _, e in alice.arrived if e["task_id"] == task_id]
    assert_recorded_once_in_order(database_url, task_id, pushed)
    # While the lock was held, nothing new was stored, but ticks went on after each wait.
    during = [e for at, e in alice.arrived if locked_at + 1 < at < locked_at + LOCK_SECONDS - 1]
    assert during and all(e["volatile"] for e in during), during

    assert alice.api(f"/tasks/{task_id}").json()["status"] == "succeeded"
    assert worker.alive() and served_by(stack, task_id) == worker.pid
    log = worker.log()
    assert "Traceback" not in log, log
    assert log.count("the database is unavailable") == 1, log
    assert log.count("the database answers again") == 1, log
