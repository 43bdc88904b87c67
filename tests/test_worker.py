"""The job lifecycle in a real RQ work horse (forked by our worker class), against real Redis."""

import pytest
from rq import Queue
from sqlalchemy import select

from app.broker import SERIALIZER
from app.extensions import db
from app.models import Notification, Task
from app.sansio.params import Param
from app.tasks import catalogue
from app.tasks.launcher import start_task
from app.tasks.runtime import TaskError
from app.tasks.types import TaskType
from tests.conftest import make_user
from worker.app_worker import AppWorker


def run_worker(app, redis):
    queue = Queue(app.config["TASK_QUEUE"], connection=redis, serializer=SERIALIZER)
    AppWorker([queue], connection=redis, serializer=SERIALIZER, app=app).work(burst=True)


def start(app, name, **params):
    with app.app_context():
        user = make_user("alice")
        return start_task(user, name, params).id, user.id


def history(app, user_id):
    with app.app_context():
        return [
            n.payload
            for n in db.session.scalars(
                select(Notification).where(Notification.user_id == user_id).order_by("seq")
            )
        ]


def test_a_task_runs_to_success_and_every_report_is_persisted(app, redis):
    task_id, user_id = start(app, "example_long_task", steps=3, delay=0)
    run_worker(app, redis)

    events = history(app, user_id)
    assert [(e["status"], e["step"], e["progress"]) for e in events] == [
        ("queued", 0, 0),
        ("running", 0, 0),
        ("running", 0, 0),
        ("running", 1, 33),
        ("running", 2, 66),
        ("running", 3, 100),
        ("succeeded", 3, 100),
    ]
    assert [e["seq"] for e in events] == list(range(1, 8))
    with app.app_context():
        task = db.session.get(Task, task_id)
        assert (task.status, task.result, task.error) == ("succeeded", {"steps": 3}, None)
        assert task.started_at <= task.finished_at
    assert Queue(app.config["TASK_QUEUE"], connection=redis).finished_job_registry.get_job_ids() == [task_id]


def _fails(ctx, kind: int):
    ctx.report(1, 2, "Half way")
    if kind == 1:
        raise TaskError("The export file could not be written.")
    raise ZeroDivisionError("secret internals")


@pytest.fixture
def failing_type(monkeypatch):
    failing = TaskType(
        name="fails",
        title="Fails",
        description="",
        func=_fails,
        params=(Param("kind", int, default=1, minimum=1, maximum=2),),
        timeout=30,
    )
    monkeypatch.setitem(catalogue.CATALOGUE, "fails", failing)


@pytest.mark.usefixtures("failing_type")
@pytest.mark.parametrize(
    ("kind", "error"),
    [(1, "The export file could not be written."), (2, "The task failed because of an internal error.")],
)
def test_a_failing_task_ends_failed_with_a_message_for_the_user(app, redis, kind, error):
    task_id, user_id = start(app, "fails", kind=kind)
    run_worker(app, redis)

    final = history(app, user_id)[-1]
    assert (final["status"], final["error"], final["progress"]) == ("failed", error, 50)
    assert "secret internals" not in str(history(app, user_id))
    with app.app_context():
        assert db.session.get(Task, task_id).status == "failed"
    registry = Queue(app.config["TASK_QUEUE"], connection=redis).failed_job_registry
    assert registry.get_job_ids() == [task_id]
