"""A progress report is committed to the database, then published on the channel."""

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Notification, Task
from app.progress import TransitionLost, report
from app.sansio.events import decode
from app.sansio.status import TaskStatus
from app.tasks.lifecycle import job_ended_badly
from tests.conftest import make_user
from tests.support import wait_for


@pytest.fixture
def subscribed(app, redis):
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(app.extensions["broker"].keys.channel)
    wait_for(lambda: pubsub.get_message(timeout=0.1) is None and pubsub.subscribed, 5, "subscription")
    yield pubsub
    pubsub.close()


def next_published(pubsub):
    message = wait_for(lambda: pubsub.get_message(timeout=0.1), 5, "a published message")
    return decode(message["data"])


def test_report_persists_then_publishes(app, subscribed):
    with app.app_context():
        user_id = make_user("ann").id
        task = Task(id="job-1", name="example_long_task", user_id=user_id)
        db.session.add(task)
        report(task, status=TaskStatus.RUNNING, step=3, total=4, message="Step 3 of 4")

        stored = db.session.scalar(select(Notification))
        assert (stored.user_id, stored.seq, stored.name) == (user_id, 1, "task_progress")
        stored_payload = stored.payload
        db.session.expire_all()
        row = db.session.get(Task, "job-1")
        assert (row.status, row.progress, row.step, row.total) == ("running", 75, 3, 4)
        assert row.started_at is not None and row.finished_at is None

    message = next_published(subscribed)
    assert (message.user_id, message.event, message.seq) == (user_id, "task_progress", 1)
    data = message.data()
    assert data == stored_payload
    assert {
        k: data[k] for k in ("task_id", "name", "status", "progress", "step", "total", "message", "seq")
    } == {
        "task_id": "job-1",
        "name": "example_long_task",
        "status": "running",
        "progress": 75,
        "step": 3,
        "total": 4,
        "message": "Step 3 of 4",
        "seq": 1,
    }
    assert isinstance(data["ts"], float)


def test_success_completes_the_bar_and_finishes(app, subscribed):
    with app.app_context():
        user = make_user("ann")
        task = Task(id="job-2", name="example_long_task", user_id=user.id)
        db.session.add(task)
        report(task, status=TaskStatus.RUNNING, step=1, total=3)
        report(task, status=TaskStatus.SUCCEEDED, result={"steps": 3})
        assert (task.progress, task.result, task.seq) == (100, {"steps": 3}, 2)
        assert task.finished_at is not None
    seqs = [next_published(subscribed).seq for _ in range(2)]
    assert seqs == [1, 2]


def lose_the_next_acknowledgement(monkeypatch, engine) -> None:
    """The next commit is applied, but its caller hears of a lost connection, as when the
    network drops between the server's commit and its answer. No real server can be made to
    do that on demand; this stands in for the network, at the driver's boundary."""
    dialect = engine.dialect
    real_commit = dialect.do_commit

    def commit_then_lose_the_answer(dbapi_connection) -> None:
        monkeypatch.setattr(dialect, "do_commit", real_commit)
        real_commit(dbapi_connection)
        lost = dialect.loaded_dbapi.OperationalError("server closed the connection unexpectedly")
        if dialect.name == "sqlite":
            lost.sqlite_errorname = "SQLITE_BUSY"
        raise lost

    monkeypatch.setattr(dialect, "do_commit", commit_then_lose_the_answer)


@pytest.mark.parametrize("status", [TaskStatus.RUNNING, TaskStatus.SUCCEEDED])
def test_a_commit_whose_acknowledgement_was_lost_is_recorded_once(app, subscribed, monkeypatch, status):
    with app.app_context():
        user = make_user("ann")
        task = Task(id="job-3", name="example_long_task", user_id=user.id)
        db.session.add(task)
        report(task, status=TaskStatus.RUNNING, step=1, total=3, wait=True)
        lose_the_next_acknowledgement(monkeypatch, db.engine)
        data = report(task, status=status, step=2, total=3, wait=True)

        assert (task.status, task.step, task.seq, data["seq"]) == (status, 2, 2, 2)
        stored = db.session.execute(select(Notification.seq, Notification.payload)).all()
        assert [(seq, payload["status"], payload["step"]) for seq, payload in stored] == [
            (1, "running", 1),
            (2, status, 2),
        ]
        db.session.refresh(user)
        assert user.last_seq == 2
    published = [next_published(subscribed) for _ in range(2)]
    assert [m.seq for m in published] == [1, 2]
    assert published[1].data() == data
    assert subscribed.get_message(timeout=0.5) is None, "published once"


def _row(task_id):
    db.session.expire_all()
    task = db.session.get(Task, task_id)
    return (task.status, task.attempt, task.step, task.total, task.message, task.seq)


def test_a_stale_attempt_cannot_overwrite_the_attempt_that_replaced_it(app):
    with app.app_context():
        user_id = make_user("ann").id
        old = Task(id="job-3", name="send_batch_emails", user_id=user_id, max_attempts=3)
        db.session.add(old)
        report(old, message="Queued")
        report(old, status=TaskStatus.RUNNING, step=0, total=0, message="Started")

        # Attempt 1's worker is declared lost (its work horse goes on), in another process.
        with app.app_context():
            job_ended_badly("job-3", stopped=False, retry_in=3, error="The worker stopped.", traceback=None)
            requeued = _row("job-3")
        assert requeued[:2] == ("queued", 2)
        events = db.session.scalar(select(db.func.count()).select_from(Notification))

        # The old attempt reports progress, as it believes, on its running task.
        with pytest.raises(TransitionLost):
            report(old, step=5, total=10, message="Sent 5 of 10")
        assert _row("job-3") == requeued

        # Attempt 2 starts; the old attempt then finishes, or fails, or is cancelled.
        with app.app_context():
            current = db.session.get(Task, "job-3")
            report(current, status=TaskStatus.RUNNING, step=0, total=0, message="Started (attempt 2 of 3)")
            running = _row("job-3")
        # Even an old attempt that has read the current row back holds only attempt 1.
        db.session.refresh(old)
        for status in (TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.RUNNING):
            with pytest.raises(TransitionLost):
                report(old, status=status, step=10, total=10, message="stale", held_attempt=1)
            assert _row("job-3") == running
        # A verdict on attempt 1 (its worker's failure handler) changes nothing either.
        job_ended_badly("job-3", stopped=False, retry_in=None, error="late", traceback=None, attempt=1)
        assert _row("job-3") == running
        assert db.session.scalar(select(db.func.count()).select_from(Notification)) == events + 1
