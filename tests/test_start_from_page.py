"""Starting a task from the page: POST with CSRF, JSON for the page's script, a redirect otherwise."""

import json
import zlib

import pytest
from rq import Queue
from sqlalchemy import select

from app.broker import SERIALIZER
from app.extensions import db
from app.models import Notification, Task
from tests.conftest import csrf_token
from tests.test_api import task_jobs


@pytest.fixture
def logged_in(client, auth):
    auth.register("alice")
    auth.login("alice")
    return csrf_token(client.get("/").get_data(as_text=True))


def test_start_returns_at_once_and_enqueues_a_json_job(client, logged_in, app, redis):
    response = client.post(
        "/tasks",
        data={"csrf_token": logged_in, "name": "example_long_task", "steps": "3", "delay": "0.5"},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 202
    task_id = response.json["id"]
    assert response.json["status"] == "queued"

    queue = Queue(app.config["TASK_QUEUE"], connection=redis, serializer=SERIALIZER)
    assert task_jobs(app, redis) == [task_id]
    job = queue.fetch_job(task_id)
    assert job.func_name == "app.tasks.runtime.run_task"
    assert job.args == ["example_long_task", {"steps": 3, "delay": 0.5}]
    # The job crosses Redis as (zlib-compressed) JSON, never pickle.
    stored = json.loads(zlib.decompress(redis.hget(job.key, "data")))
    assert stored[0] == "app.tasks.runtime.run_task"

    with app.app_context():
        task = db.session.get(Task, task_id)
        assert (task.status, task.params, task.seq) == ("queued", {"steps": 3, "delay": 0.5}, 1)
        assert db.session.scalar(select(Notification.name)) == "task_progress"


def test_plain_form_post_redirects_to_the_page(client, logged_in):
    response = client.post("/tasks", data={"csrf_token": logged_in, "name": "example_long_task"})
    assert response.status_code == 302 and response.headers["Location"] == "/"


def test_bad_parameters_are_refused_with_a_message(client, logged_in, app, redis):
    response = client.post(
        "/tasks",
        data={"csrf_token": logged_in, "name": "example_long_task", "steps": "1000"},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 400
    assert response.json == {"error": "steps must be between 1 and 100."}

    response = client.post(
        "/tasks", data={"csrf_token": logged_in, "name": "example_long_task", "delay": "soon"}
    )
    assert b"delay must be a number." in client.get(response.headers["Location"]).data

    with app.app_context():
        assert db.session.scalar(select(Task)) is None
    assert task_jobs(app, redis) == []


def test_unknown_task_type_is_refused(client, logged_in):
    response = client.post(
        "/tasks",
        data={"csrf_token": logged_in, "name": "mine_bitcoin"},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 400
    assert "mine_bitcoin" in response.json["error"]


def test_the_page_builds_the_form_from_the_catalogue(client, logged_in):
    html = client.get("/").get_data(as_text=True)
    assert 'name="name" value="example_long_task"' in html
    assert 'name="steps" value="10" min="1" max="100"' in html
    assert 'name="delay" value="1.0" min="0.0" max="5.0"' in html
