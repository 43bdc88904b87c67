"""The job lifecycle in a real RQ work horse (forked by our worker class), against real Redis."""

import threading
import time
from datetime import timedelta

import pytest
from rq import Queue
from sqlalchemy import event, func, select

from app.broker import SERIALIZER
from app.extensions import db, socketio
from app.models import Notification, Task, User, utcnow
from app.progress import report
from app.sansio.events import decode
from app.sansio.params import Param
from app.sansio.status import TaskStatus
from app.tasks import catalogue
from app.tasks.errors import RetryableTaskError, TaskError
from app.tasks.launcher import start_task
from app.tasks.lifecycle import request_cancel
from app.tasks.types import TaskType
from app.watchdog import Watchdog
from tests.conftest import make_user
from tests.support import wait_for
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
    if kind == 3:
        raise RetryableTaskError("The server could not be reached.")
    raise ZeroDivisionError("secret internals")


@pytest.fixture
def failing_type(monkeypatch):
    failing = TaskType(
        name="fails",
        title="Fails",
        description="",
        func=_fails,
        params=(Param("kind", int, default=1, minimum=1, maximum=3),),
        timeout=30,
        retry_intervals=(0,),
    )
    monkeypatch.setitem(catalogue.CATALOGUE, "fails", failing)


@pytest.mark.usefixtures("failing_type")
def test_only_a_passing_failure_is_retried(app, redis):
    _, user_id = start(app, "fails", kind=3)
    run_worker(app, redis)
    events = history(app, user_id)
    assert [(e["status"], e["attempt"]) for e in events if e["status"] != "running"] == [
        ("queued", 1),
        ("queued", 2),
        ("failed", 2),
    ]
    assert events[-1]["error"] == "The server could not be reached."


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


def _stubborn(ctx):
    # Never reports, never checks for cancellation: only a hard stop ends it.
    time.sleep(60)


def test_a_task_that_ignores_cancel_is_stopped_by_the_watchdog(app, redis, monkeypatch):
    stubborn = TaskType(name="stubborn", title="", description="", func=_stubborn, params=(), timeout=120)
    monkeypatch.setitem(catalogue.CATALOGUE, "stubborn", stubborn)
    task_id, user_id = start(app, "stubborn")
    watchdog = Watchdog(app, socketio)

    def cancel_when_running():
        with app.app_context():
            wait_for(lambda: _status(task_id) == "running", 10, "the task to start")
            request_cancel(db.session.get(Task, task_id))
            # Pretend the grace period has passed rather than wait it out.
            db.session.get(Task, task_id).cancel_requested_at = utcnow() - timedelta(minutes=1)
            db.session.commit()
            wait_for(lambda: watchdog.tick() or _status(task_id) == "cancelled", 10, "the hard stop")

    helper = threading.Thread(target=cancel_when_running)
    helper.start()
    started = time.monotonic()
    run_worker(app, redis)  # returns once the stopped job is handled (burst mode)
    helper.join(15)
    assert time.monotonic() - started < 20
    assert [e["status"] for e in history(app, user_id)][-1] == "cancelled"
    with app.app_context():
        db.session.expire_all()
        assert db.session.get(Task, task_id).status == "cancelled"


def _status(task_id):
    db.session.expire_all()
    return db.session.get(Task, task_id).status


def subscribed(app, redis):
    pubsub = redis.pubsub()
    pubsub.subscribe(app.extensions["broker"].keys.channel)
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    return pubsub


def test_a_flood_of_reports_is_stored_rarely_and_published_as_volatile_ticks(app, redis):
    app.config["PROGRESS_STORE_INTERVAL"] = 60
    app.config["PROGRESS_MIN_INTERVAL"] = 0
    pubsub = subscribed(app, redis)
    _, user_id = start(app, "example_long_task", steps=100, delay=0)
    run_worker(app, redis)

    stored = history(app, user_id)
    assert [(e["status"], e["step"], e["total"]) for e in stored] == [
        ("queued", 0, 0),
        ("running", 0, 0),
        ("succeeded", 100, 100),
    ], "status changes and the final state are stored, the steps between are not"
    published = []
    while (message := pubsub.get_message(timeout=1)) is not None:
        published.append(decode(message["data"]).data())
    pubsub.close()
    ticks = [e for e in published if e["volatile"]]
    assert [e["step"] for e in ticks] == list(range(0, 101))
    assert {e["seq"] for e in ticks} == {2}, "a tick carries the seq of the last stored event"
    assert [e["seq"] for e in published if not e["volatile"]][-2:] == [2, 3]


def test_ticks_are_coalesced_too(app, redis):
    app.config["PROGRESS_STORE_INTERVAL"] = 60
    app.config["PROGRESS_MIN_INTERVAL"] = 60
    pubsub = subscribed(app, redis)
    start(app, "example_long_task", steps=100, delay=0)
    run_worker(app, redis)
    published = []
    while (message := pubsub.get_message(timeout=1)) is not None:
        published.append(decode(message["data"]).data())
    pubsub.close()
    assert [(e["status"], e["step"], e["volatile"]) for e in published] == [
        ("queued", 0, False),
        ("running", 0, False),
        ("running", 0, True),
        ("running", 100, True),
        ("succeeded", 100, False),
    ], "101 reports: the first and the last step are published, the rest coalesced away"


def _stops_early(ctx):
    for step in range(1, 51):
        ctx.report(step, 100, f"item {step}")
    return "half"


def test_the_last_coalesced_report_is_on_the_final_event(app, redis, monkeypatch):
    app.config["PROGRESS_STORE_INTERVAL"] = 60
    app.config["PROGRESS_MIN_INTERVAL"] = 60
    early = TaskType(name="early", title="", description="", func=_stops_early, params=(), timeout=30)
    monkeypatch.setitem(catalogue.CATALOGUE, "early", early)
    _, user_id = start(app, "early")
    run_worker(app, redis)
    final = history(app, user_id)[-1]
    assert (final["status"], final["step"], final["total"], final["message"]) == (
        "succeeded",
        50,
        100,
        "Done",
    )


def _ticks_between_stores(ctx):
    statements = []

    def record(_conn, _cursor, statement, *_args):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        for step in range(1, 20):
            ctx.report(step, 100, f"tick {step}")
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    return statements


def test_ticks_between_stored_events_touch_no_database(app, redis, monkeypatch):
    # A tick that reloaded the task's row would autoflush and hold a write transaction (on
    # SQLite the whole database's write lock) open until the next stored event.
    app.config["PROGRESS_STORE_INTERVAL"] = 60
    app.config["PROGRESS_MIN_INTERVAL"] = 0
    ticking = TaskType(
        name="ticking", title="", description="", func=_ticks_between_stores, params=(), timeout=30
    )
    monkeypatch.setitem(catalogue.CATALOGUE, "ticking", ticking)
    pubsub = subscribed(app, redis)
    _, user_id = start(app, "ticking")
    run_worker(app, redis)
    published = []
    while (message := pubsub.get_message(timeout=1)) is not None:
        published.append(decode(message["data"]).data())
    pubsub.close()

    final = history(app, user_id)[-1]
    assert (final["status"], final["result"]) == ("succeeded", [])
    ticks = [e for e in published if e["volatile"]]
    assert [(e["step"], e["message"], e["progress"]) for e in ticks] == [
        (s, f"tick {s}", s) for s in range(1, 20)
    ]
    assert final["step"] == 19, "the last tick's values are on the final event"


def test_after_warm_up_a_task_lifecycle_compiles_no_statement(app):
    # Each job runs in a fork of the worker: a statement compiled in the job is compiled
    # again by every job.
    with app.app_context():
        user_id = make_user("ann").id
        db.session.add(Task(id="job-1", name="example_long_task", user_id=user_id))
        db.session.commit()
    state = app.extensions["broker"]
    AppWorker([state.queue], connection=state.redis, serializer=SERIALIZER, app=app)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(User)) == 1, "the scratch user is gone"

        misses = []

        def record(_conn, _cursor, statement, _params, context, _many):
            if context.cache_hit != context.cache_hit.CACHE_HIT:
                misses.append(statement)

        event.listen(db.engine, "after_cursor_execute", record)
        try:
            task = db.session.get(Task, "job-1")
            report(task, status=TaskStatus.RUNNING, step=0, total=0, message="Started", error=None)
            report(task, step=5, total=10, message="Step 5 of 10")
            report(task, status=TaskStatus.SUCCEEDED, step=10, total=10, message="Done", result={"n": 1})
        finally:
            event.remove(db.engine, "after_cursor_execute", record)
        assert misses == []
        assert db.session.scalar(select(func.count()).select_from(Notification)) == 3
