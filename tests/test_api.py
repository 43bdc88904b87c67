import base64

import pytest
from rq import Queue

from app.broker import SERIALIZER
from app.extensions import db
from app.models import Task
from app.tasks.launcher import RUN_TASK


def basic(username: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def task_jobs(app, redis) -> list[str]:
    """The queue's task jobs (registering also queues a confirmation mail)."""
    queue = Queue(app.config["TASK_QUEUE"], connection=redis, serializer=SERIALIZER)
    return [job.id for job in queue.jobs if job.func_name == RUN_TASK]


def register(client, username="alice", password="correct horse"):
    return client.post(
        "/api/users", json={"username": username, "email": f"{username}@example.com", "password": password}
    )


def token(client, username="alice", password="correct horse") -> str:
    register(client, username, password)
    response = client.post("/api/tokens", headers=basic(username, password))
    assert response.status_code == 201
    return response.json["token"]


def test_create_user(client):
    response = register(client)
    assert response.status_code == 201
    assert response.json == {"id": 1, "username": "alice"}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"email": "a@example.com", "password": "correct horse"}, "username is required"),
        ({"username": "a", "password": "correct horse"}, "email is required"),
        ({"username": "a", "email": "a@example.com"}, "password is required"),
        ({"username": "a", "email": "a@example.com", "password": "short"}, "password must be at least 8"),
        ({"username": "a", "email": "nope", "password": "correct horse"}, "email is not a valid address"),
        ({"username": "a" * 65, "email": "a@example.com", "password": "correct horse"}, "at most 64"),
    ],
)
def test_create_user_validation(client, body, error):
    response = client.post("/api/users", json=body)
    assert response.status_code == 400
    assert error in response.json["error"]


def test_duplicate_user_is_a_conflict(client):
    register(client)
    response = register(client)
    assert response.status_code == 409
    assert response.json == {"error": "username is already registered"}


def test_body_must_be_json_object(client):
    response = client.post("/api/users", data="username=alice")
    assert response.status_code == 400
    assert response.json == {"error": "request body must be a JSON object"}


def test_token_needs_correct_basic_auth(client):
    register(client)
    for headers in ({}, basic("alice", "wrong"), basic("nobody", "correct horse"), bearer("x")):
        response = client.post("/api/tokens", headers=headers)
        assert response.status_code == 401
        assert "error" in response.json
        assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_token_authenticates_and_can_be_revoked(client):
    tok = token(client)
    assert client.get("/api/tasks", headers=bearer(tok)).status_code == 200
    assert client.delete("/api/tokens", headers=bearer(tok)).status_code == 204
    response = client.get("/api/tasks", headers=bearer(tok))
    assert response.status_code == 401
    assert response.json == {"error": "a valid bearer token is required"}


def test_api_ignores_the_session_cookie(client, auth):
    auth.register("alice")
    auth.login("alice")
    assert client.get("/api/tasks").status_code == 401


def test_start_and_read_a_task(client, app, redis):
    tok = token(client)
    response = client.post(
        "/api/tasks", json={"name": "example_long_task", "params": {"steps": 2}}, headers=bearer(tok)
    )
    assert response.status_code == 202
    task = response.json
    assert response.headers["Location"].endswith(f"/api/tasks/{task['id']}")
    assert task["status"] == "queued" and task["params"] == {"steps": 2, "delay": 1.0}
    assert task_jobs(app, redis) == [task["id"]]

    assert client.get(f"/api/tasks/{task['id']}", headers=bearer(tok)).json["id"] == task["id"]
    assert [t["id"] for t in client.get("/api/tasks", headers=bearer(tok)).json] == [task["id"]]


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"name": "example_long_task", "params": {"steps": 0}}, 400, "steps must be between 1 and 100"),
        ({"name": "example_long_task", "params": {"delay": 3600}}, 400, "delay must be between 0.0 and 5.0"),
        ({"name": "example_long_task", "params": {"hours": 1}}, 400, "hours is not a parameter of this task"),
        ({"name": "example_long_task", "params": [10]}, 400, "params must be an object"),
        ({"name": "nope"}, 400, "unknown task type 'nope'"),
        ({"params": {}}, 400, "name is required"),
    ],
)
def test_bad_task_requests_are_refused_before_enqueueing(client, app, redis, body, status, error):
    tok = token(client)
    response = client.post("/api/tasks", json=body, headers=bearer(tok))
    assert response.status_code == status
    assert response.json == {"error": error}
    assert task_jobs(app, redis) == []
    with app.app_context():
        assert db.session.query(Task).count() == 0


def test_other_users_tasks_are_not_found(client):
    alice, bob = token(client, "alice"), token(client, "bob")
    task_id = client.post("/api/tasks", json={"name": "example_long_task"}, headers=bearer(alice)).json["id"]
    response = client.get(f"/api/tasks/{task_id}", headers=bearer(bob))
    assert response.status_code == 404 and response.json == {"error": "task not found"}
    assert client.get("/api/tasks", headers=bearer(bob)).json == []


def test_task_types_are_listed(client):
    tok = token(client)
    types = client.get("/api/task-types", headers=bearer(tok)).json
    demo = next(t for t in types if t["name"] == "example_long_task")
    assert [p["name"] for p in demo["params"]] == ["steps", "delay"]


def test_errors_are_json(client):
    response = client.get("/api/nothing-here")
    assert response.status_code == 404
    assert "error" in response.json
    response = client.put("/api/tasks")
    assert response.status_code == 405 and "error" in response.json


def test_posts_are_written_and_listed_per_user(client):
    alice, bob = token(client, "alice"), token(client, "bob")
    response = client.post("/api/posts", json={"body": "  hello world "}, headers=bearer(alice))
    assert response.status_code == 201 and response.json["body"] == "hello world"
    assert [p["body"] for p in client.get("/api/posts", headers=bearer(alice)).json] == ["hello world"]
    assert client.get("/api/posts", headers=bearer(bob)).json == []
    for body, error in ((" ", "body is required"), ("x" * 281, "at most 280")):
        response = client.post("/api/posts", json={"body": body}, headers=bearer(alice))
        assert response.status_code == 400 and error in response.json["error"]
