"""Retries after a killed worker, with real web, worker and SMTP processes: on time, exactly once.

A digest is the task with side effects and retries: it is killed mid-batch, with its worker
holding RQ's scheduler lock, and a second worker carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from rq.scheduler import RQScheduler

from app.models import User, utcnow
from tests.e2e.test_live_progress import Listener
from tests.e2e.test_task_emails_e2e import transitions, wait_for_event
from tests.support import MailSink, Process, free_port, wait_for

pytestmark = pytest.mark.e2e

RECIPIENTS = [f"reader{n:02d}" for n in range(40)]
# Each message takes this long to be accepted: the batch runs long enough to be killed halfway.
DATA_DELAY = 0.4
WORKER_LOST = "The worker running this task stopped unexpectedly."


def digests(sink: MailSink) -> list[str]:
    """Whom the sink took a digest for (alice's confirmation mail is no digest)."""
    return [
        to for r in sink.received if r.message["Subject"].startswith("Microblog digest") for to in r.rcpt_tos
    ]


class SlowSink(MailSink):
    async def handle_DATA(self, server, session, envelope) -> str:
        await asyncio.sleep(DATA_DELAY)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def mail_sink() -> Iterator[SlowSink]:
    sink = SlowSink(free_port()).start()
    yield sink
    sink.stop()


@pytest.fixture
def live_stack_env(mail_sink: SlowSink) -> dict[str, str]:
    # A lost worker is noticed within seconds.
    return {
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": str(mail_sink.port),
        "WORKER_LOST_AFTER": "3",
        "WATCHDOG_INTERVAL": "1",
    }


@pytest.fixture
def alice(live_stack, database_url: str) -> Iterator[tuple[str, Listener]]:
    token = live_stack.create_user("alice")
    engine = sa.create_engine(database_url)
    users = User.__table__
    with engine.begin() as conn:
        # Readers who only receive mail, at confirmed addresses: no password that could ever log in.
        conn.execute(
            sa.insert(users),
            [
                {
                    "username": name,
                    "username_key": name,
                    "email": f"{name}@example.com",
                    "email_confirmed_at": utcnow(),
                    "password_hash": "!",
                }
                for name in RECIPIENTS
            ],
        )
        # Mailing other users is an operator's action.
        conn.execute(sa.update(users).where(users.c.username == "alice").values(is_admin=True))
    engine.dispose()
    listener = Listener(live_stack.base_url, {"token": token})
    yield token, listener
    listener.close()


@pytest.fixture
def worker_pids(live_stack) -> Iterator[set[int]]:
    """Every process of the stack's workers the test saw; any left at the end are killed."""
    pids: set[int] = set()
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def gone(pid: int) -> bool:
    # An orphan's zombie lingers until its new parent reaps it: it runs no more code.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


def scheduler_lock(live_stack) -> tuple[str, int] | None:
    """The name and PID of the scheduler holding the queue's lock."""
    redis = live_stack.redis
    owner = redis.get(RQScheduler.get_locking_key(live_stack.env["TASK_QUEUE"]))
    if owner is None:
        return None
    name = owner.decode()
    pid = redis.hget(f"rq:scheduler:{name}", "pid")
    return (name, int(pid)) if pid else None


def start_digest(live_stack, alice, worker: Process, worker_pids: set[int]) -> tuple[str, list[int]]:
    """A digest to every reader, run by ``worker`` (the only one yet), and the worker's processes then."""
    token, listener = alice
    task_id = live_stack.start_task(token, "send_batch_emails", recipients=RECIPIENTS, days=1)["id"]
    wait_for_event(listener, task_id, lambda e: e["status"] == "running" and e["step"] >= 3, 30)
    children = worker.descendants()
    worker_pids.update(children)
    return task_id, children


def kill_group_holding_the_lock(live_stack, worker: Process) -> None:
    owner = scheduler_lock(live_stack)
    assert owner is not None and owner[1] in worker.descendants(), "the first worker holds the lock"
    os.killpg(worker.pid, signal.SIGKILL)
    worker.popen.wait(10)
    assert scheduler_lock(live_stack) == owner, "the dead worker's lock is still held"


def test_a_retry_after_a_killed_worker_holding_the_scheduler_lock_runs_on_time(
    live_stack, alice, mail_sink, worker_pids
):
    _, listener = alice
    first = next(p for p in live_stack.processes if p.name == "worker")
    wait_for(lambda: scheduler_lock(live_stack), 30, "the first worker's scheduler to take the lock")
    task_id, _ = start_digest(live_stack, alice, first, worker_pids)
    second = live_stack.start_worker("worker-2")
    worker_pids.update(second.descendants())

    kill_group_holding_the_lock(live_stack, first)

    retry = wait_for_event(listener, task_id, lambda e: e["status"] == "queued", 30)
    assert (retry["attempt"], retry["message"]) == (
        2,
        f"Attempt 1 of 3 failed: {WORKER_LOST} Retrying in 3 s.",
    )
    started = wait_for_event(listener, task_id, lambda e: e["status"] == "running", 60)
    assert started["attempt"] == 2
    late = started["ts"] - retry["ts"]
    # RQ schedules to the whole second, so a retry may start up to a second early.
    assert 3 - 1.5 <= late <= 3 + 5, f"announced in 3 s, ran after {late:.1f} s"

    events = listener.until_finished(task_id, timeout=60)
    assert events[-1]["status"] == "succeeded", live_stack.logs()
    assert task_id in second.log(), "the second worker ran the retry"
    owner = scheduler_lock(live_stack)
    assert owner is not None and owner[1] in second.descendants(), "the live worker took the lock over"


def test_a_digest_retried_after_its_worker_was_killed_mails_nobody_twice(
    live_stack, alice, mail_sink, worker_pids
):
    _, listener = alice
    first = next(p for p in live_stack.processes if p.name == "worker")
    task_id, children = start_digest(live_stack, alice, first, worker_pids)
    second = live_stack.start_worker("worker-2")
    worker_pids.update(second.descendants())
    wait_for(lambda: len(mail_sink.received) >= 5, 30, "a few messages to go out")

    # Every process of the worker, the work horse included, at once.
    for pid in [first.pid, *children]:
        os.kill(pid, signal.SIGKILL)
    before = len(mail_sink.received)

    events = listener.until_finished(task_id, timeout=90)
    final = events[-1]
    assert final["status"] == "succeeded", live_stack.logs()
    assert transitions(events) == [
        ("queued", 1),
        ("running", 1),
        ("queued", 2),
        ("running", 2),
        ("succeeded", 2),
    ]

    counts = Counter(digests(mail_sink))
    assert max(counts.values()) == 1, f"mailed twice: {[to for to, n in counts.items() if n > 1]}"
    unconfirmed = [f["recipient"] for f in final["result"]["failed"]]
    # At most the one message in flight when the worker died is unconfirmed; it is not sent again.
    assert len(unconfirmed) <= 1
    assert set(counts) | {f"{name}@example.com" for name in unconfirmed} == {
        f"{name}@example.com" for name in RECIPIENTS
    }
    assert final["result"]["sent"] == len(RECIPIENTS) - len(unconfirmed)
    assert len(counts) > before >= 5, "both attempts sent some"


def test_killing_only_the_worker_parent_ends_its_children_and_the_task_is_retried(
    live_stack, alice, mail_sink, worker_pids
):
    token, listener = alice
    first = next(p for p in live_stack.processes if p.name == "worker")
    task_id, children = start_digest(live_stack, alice, first, worker_pids)
    second = live_stack.start_worker("worker-2")
    worker_pids.update(second.descendants())

    os.kill(first.pid, signal.SIGKILL)
    first.popen.wait(10)
    # The work horse (in a process group of its own) and the scheduler die with their parent,
    # at once: before the watchdog gives the attempt up (a lease period later), not after.
    wait_for(lambda: all(gone(pid) for pid in children), 10, f"the worker's children {children} to die")
    r = requests.get(
        f"{live_stack.base_url}/api/tasks/{task_id}", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert (r.json()["status"], r.json()["attempt"]) == ("running", 1)

    events = listener.until_finished(task_id, timeout=90)
    assert events[-1]["status"] == "succeeded", live_stack.logs()
    assert transitions(events) == [
        ("queued", 1),
        ("running", 1),
        ("queued", 2),
        ("running", 2),
        ("succeeded", 2),
    ]
    assert max(Counter(digests(mail_sink)).values()) == 1
