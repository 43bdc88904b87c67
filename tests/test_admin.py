"""The operator's page: only for admins; every user's tasks, queues and workers; retry and cancel; live."""

import pytest
from rq import Queue
from sqlalchemy import select

from app.broker import SERIALIZER
from app.extensions import db, socketio
from app.models import Task, User
from app.tasks.launcher import start_task
from app.tasks.lifecycle import job_ended_badly
from tests.conftest import AuthActions, csrf_token, make_user
from tests.support import wait_for
from worker.app_worker import AppWorker


@pytest.fixture
def operator(app, client):
    AuthActions(client).register("olga")
    result = app.test_cli_runner().invoke(args=["make-admin", "olga"])
    assert result.exit_code == 0 and "olga is an operator" in result.output
    with app.app_context():
        assert db.session.scalar(select(User.is_admin).where(User.username == "olga"))
    AuthActions(client).login("olga")
    return client


def run_worker(app, redis):
    queue = Queue(app.config["TASK_QUEUE"], connection=redis, serializer=SERIALIZER)
    AppWorker([queue], connection=redis, serializer=SERIALIZER, app=app).work(burst=True)


def failed_task(app) -> str:
    with app.app_context():
        task = start_task(make_user("ann"), "example_long_task", {"steps": 2, "delay": 0})
        task_id = task.id
        job_ended_badly(task_id, stopped=False, retry_in=None, error="It broke.", traceback="Traceback ...")
    return task_id


def test_the_page_is_for_operators_only(client, auth):
    auth.register("alice")
    auth.login("alice")
    assert client.get("/admin/").status_code == 403
    assert "Operations" not in client.get("/").get_data(as_text=True)


def test_make_admin_needs_an_existing_user(app):
    result = app.test_cli_runner().invoke(args=["make-admin", "nobody"])
    assert result.exit_code != 0 and "no user named 'nobody'" in result.output


def test_operator_sees_queues_workers_and_everyones_tasks(app, operator):
    task_id = failed_task(app)
    with app.app_context():
        start_task(
            db.session.scalar(select(User).where(User.username == "ann")), "compute_primes", {"limit": 100}
        )
    page = operator.get("/admin/").get_data(as_text=True)
    assert app.config["TASK_QUEUE"] in page
    assert "No worker is running" in page
    assert task_id in page and "It broke." in page and '"username": "ann"' in page
    assert "compute_primes" in page


def test_operator_retries_a_failed_task_and_it_runs_again(app, redis, operator):
    task_id = failed_task(app)
    token = csrf_token(operator.get("/admin/").get_data(as_text=True))
    response = operator.post(
        f"/admin/tasks/{task_id}/retry", headers={"Accept": "application/json", "X-CSRFToken": token}
    )
    assert response.status_code == 202
    assert (response.json["status"], response.json["attempt"], response.json["error"]) == ("queued", 2, None)
    run_worker(app, redis)
    with app.app_context():
        task = db.session.get(Task, task_id)
        assert (task.status, task.attempt, task.traceback) == ("succeeded", 2, None)
    again = operator.post(
        f"/admin/tasks/{task_id}/retry", headers={"Accept": "application/json", "X-CSRFToken": token}
    )
    assert again.status_code == 409
    assert again.json == {"error": "only failed tasks can be retried; this one is succeeded"}


def test_operator_cancels_anyones_queued_task(app, operator):
    with app.app_context():
        task_id = start_task(make_user("ann"), "example_long_task", {"steps": 2}).id
    token = csrf_token(operator.get("/admin/").get_data(as_text=True))
    response = operator.post(
        f"/admin/tasks/{task_id}/cancel", headers={"Accept": "application/json", "X-CSRFToken": token}
    )
    assert response.status_code == 200 and response.json["status"] == "cancelled"
    assert operator.post("/admin/tasks/nope/cancel", headers={"X-CSRFToken": token}).status_code == 404


def test_operator_socket_hears_every_users_tasks(app, operator):
    admin_socket = socketio.test_client(app, flask_test_client=operator)
    admin_socket.get_received()
    with app.app_context():
        task_id = start_task(make_user("ann"), "example_long_task", {"steps": 2}).id
    got = []
    wait_for(
        lambda: got.extend(p for p in admin_socket.get_received() if p["name"] == "admin_task") or got,
        10,
        "an admin_task event",
    )
    event = got[0]["args"][0]
    assert event["task_id"] == task_id and event["status"] == "queued"
    assert event["user_id"] != db_user_id(app, "olga")


def db_user_id(app, username):
    with app.app_context():
        return db.session.scalar(select(User.id).where(User.username == username))
