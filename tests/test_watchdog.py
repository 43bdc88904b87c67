"""Lost-worker detection against a real Redis that restarts empty: only a worker that really stopped is lost."""

import time
from datetime import timedelta

import pytest
from rq.job import Job

from app.broker import SERIALIZER
from app.extensions import broker, db, socketio
from app.models import Login, Task, utcnow
from app.progress import report
from app.sansio.status import TaskStatus
from app.tasks.lifecycle import WORKER_LOST
from app.watchdog import Watchdog
from tests.conftest import make_user
from tests.support import RedisServer

LEASE = 2


@pytest.fixture
def private_redis(tmp_path):
    server = RedisServer(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def outage_app(make_app, private_redis):
    app = make_app(REDIS_URL=private_redis.url, WORKER_LOST_AFTER=LEASE, WATCHDOG_INTERVAL=1)
    with app.app_context():
        db.create_all()
    return app


def _task(status: TaskStatus, *, age: float) -> str:
    user = make_user(f"user-{time.monotonic_ns()}")
    task = Task(id=f"t-{time.monotonic_ns()}", name="example_long_task", user_id=user.id, params={})
    task.params = {"steps": 1, "delay": 0}
    db.session.add(task)
    report(task, message="Queued")
    if status is TaskStatus.RUNNING:
        report(task, status=TaskStatus.RUNNING, message="Started")
    # As if it had been going for a while.
    task.created_at = task.started_at = utcnow() - timedelta(seconds=age)
    task.reported_at = time.time() - age
    db.session.commit()
    return task.id


def _tick(watchdog: Watchdog) -> None:
    time.sleep(1)  # past the previous tick's lock
    watchdog.tick()
    db.session.expire_all()


def test_a_lease_gone_with_a_redis_restart_is_not_a_lost_worker(outage_app, private_redis):
    with outage_app.app_context():
        watchdog = Watchdog(outage_app, socketio)
        watchdog.tick()
        task_id = _task(TaskStatus.RUNNING, age=600)
        private_redis.kill()
        private_redis.start()  # empty: the task's lease is gone with everything else
        _tick(watchdog)
        assert db.session.get(Task, task_id).status == TaskStatus.RUNNING
        # Its worker renews the lease once Redis answers, and from then on: it is alive.
        for _ in range(4):
            broker.redis.set(broker.keys.lease(task_id), "worker", ex=LEASE)
            _tick(watchdog)
        assert db.session.get(Task, task_id).status == TaskStatus.RUNNING


def test_a_worker_that_never_renews_its_lease_is_lost_once_redis_answered_a_lease_period(
    outage_app, private_redis
):
    with outage_app.app_context():
        watchdog = Watchdog(outage_app, socketio)
        task_id = _task(TaskStatus.RUNNING, age=600)
        private_redis.kill()
        private_redis.start()
        _tick(watchdog)
        assert db.session.get(Task, task_id).status == TaskStatus.RUNNING
        time.sleep(LEASE)
        _tick(watchdog)
        task = db.session.get(Task, task_id)
        assert (task.status, task.error) == (TaskStatus.FAILED, WORKER_LOST)


def test_a_queued_task_whose_job_vanished_is_enqueued_again_once(outage_app, private_redis):
    with outage_app.app_context():
        watchdog = Watchdog(outage_app, socketio)
        task_id = _task(TaskStatus.QUEUED, age=600)
        assert not Job.exists(task_id, connection=broker.redis)
        for _ in range(3):
            _tick(watchdog)
        task = db.session.get(Task, task_id)
        assert (task.status, task.error) == (TaskStatus.QUEUED, None)
        job = Job.fetch(task_id, connection=broker.redis, serializer=SERIALIZER)
        assert job.args == ["example_long_task", {"steps": 1, "delay": 0}]
        assert broker.queue.job_ids == [task_id], "enqueued once"


def test_a_queued_task_whose_job_stopped_waiting_is_enqueued_again(outage_app):
    # Redis went away while a worker was recording the retry: the job stayed as it was, started.
    with outage_app.app_context():
        watchdog = Watchdog(outage_app, socketio)
        task_id = _task(TaskStatus.QUEUED, age=600)
        stale = broker.queue.enqueue("app.tasks.runtime.run_task", "example_long_task", {}, job_id=task_id)
        broker.queue.remove(stale)
        stale.set_status("started")
        _tick(watchdog)
        job = Job.fetch(task_id, connection=broker.redis, serializer=SERIALIZER)
        assert job.get_status() == "queued"
        assert broker.queue.job_ids == [task_id]


def test_logins_past_their_lifetime_are_forgotten(outage_app):
    with outage_app.app_context():
        user = make_user("ann")
        for name, expires_in in (("expired", -1), ("live", 3600)):
            db.session.add(
                Login(user=user, key_hash=name, expires_at=utcnow() + timedelta(seconds=expires_in))
            )
        db.session.commit()
        _tick(Watchdog(outage_app, socketio))
        assert [login.key_hash for login in db.session.scalars(db.select(Login))] == ["live"]
