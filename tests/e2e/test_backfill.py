"""Committed but never heard: a socket that stays connected still gets every stored event once, in order.

The events here are committed by this test process (as a worker would) while the web node
cannot hear them: its Redis is down, or the publish went where nobody listens.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.exceptions import RedisError

from app.extensions import db
from app.models import Notification, Task, User
from app.progress import report
from app.sansio.status import TaskStatus
from tests.e2e.test_resume import Recorder
from tests.support import RedisServer

pytestmark = pytest.mark.e2e


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The stack runs on the private server: the test kills and restarts it."""
    return redis_server.url


@pytest.fixture
def live_stack_env() -> dict[str, str]:
    # The task below has no worker behind it: the watchdog must not end it meanwhile.
    return {"WORKER_LOST_AFTER": "600"}


def stored(got: list[tuple[str, dict]]) -> list[dict]:
    return [data for name, data in got if name == "task_progress" and not data["volatile"]]


def status_is(status: str):
    return lambda name, data: name == "task_progress" and data["status"] == status


def start_running(make_app, username: str):
    app = make_app()
    with app.app_context():
        user = db.session.scalar(db.select(User).where(User.username == username))
        task = Task(id=str(uuid.uuid4()), name="example_long_task", user_id=user.id, params={})
        db.session.add(task)
        report(task, status=TaskStatus.RUNNING, step=0, total=10, message="Started")
        return app, task.id, user.id


def step(app, task_id: str, n: int, **fields) -> None:
    with app.app_context():
        task = db.session.get(Task, task_id)
        # Committed first, published second: with Redis down the publish fails after the commit.
        with contextlib.suppress(RedisError):
            report(task, step=n, total=10, **fields)


def seqs_of(app, user_id: int) -> list[int]:
    with app.app_context():
        return list(
            db.session.scalars(
                db.select(Notification.seq).where(Notification.user_id == user_id).order_by(Notification.seq)
            )
        )


def test_events_committed_while_the_node_cannot_hear_reach_a_socket_that_stayed(
    live_stack, make_app, redis_server
):
    token = live_stack.create_user("alice")
    client = Recorder(live_stack.base_url, {"token": token})
    try:
        app, task_id, user_id = start_running(make_app, "alice")
        got = client.until(status_is("running"))

        redis_server.kill()
        for n in range(1, 6):
            step(app, task_id, n)
        redis_server.start()
        # Published at once: it may beat the node's resubscription, and is then backfilled too.
        step(app, task_id, 10, status=TaskStatus.SUCCEEDED, message="Done")
        got += client.until(status_is("succeeded"), 60)
    finally:
        client.sio.disconnect()
    events = stored(got)
    assert [d["seq"] for d in events] == seqs_of(app, user_id), "every stored event once, in order"
    assert [d["step"] for d in events] == [0, 1, 2, 3, 4, 5, 10]


def test_a_publish_lost_while_the_node_listens_is_backfilled(live_stack, make_app):
    token = live_stack.create_user("bob")
    client = Recorder(live_stack.base_url, {"token": token})
    try:
        app, task_id, user_id = start_running(make_app, "bob")
        got = client.until(status_is("running"))
        # Published where no node listens: committed, never heard.
        lost = make_app(TASK_QUEUE=f"nowhere-{uuid.uuid4().hex}")
        step(lost, task_id, 3)
        got += client.until(lambda name, data: name == "task_progress" and data["step"] == 3, 60)
        step(app, task_id, 10, status=TaskStatus.SUCCEEDED, message="Done")
        got += client.until(status_is("succeeded"))
    finally:
        client.sio.disconnect()
    events = stored(got)
    assert [d["seq"] for d in events] == seqs_of(app, user_id), "the lost one once, in order"
    assert [d["step"] for d in events] == [0, 3, 10]


def test_a_socket_that_connects_while_redis_is_down_is_caught_up_when_it_is_back(
    live_stack, make_app, redis_server
):
    token = live_stack.create_user("carol")
    app, task_id, user_id = start_running(make_app, "carol")
    redis_server.kill()
    step(app, task_id, 1)
    # Accepted at once (not after the 10 s wait for a subscription), with the database's state.
    client = Recorder(live_stack.base_url, {"token": token, "last_seq": 0})
    try:
        got = client.until(lambda name, data: name == "task_progress" and data["step"] == 1, 5)
        step(app, task_id, 2)
        redis_server.start()
        step(app, task_id, 10, status=TaskStatus.SUCCEEDED, message="Done")
        got += client.until(status_is("succeeded"), 60)
    finally:
        client.sio.disconnect()
    assert got[0][0] == "welcome"
    events = stored(got)
    assert [d["seq"] for d in events] == seqs_of(app, user_id), "every stored event once, in order"
    assert [d["step"] for d in events] == [0, 1, 2, 10]
