"""Input a hostile user sends: every piece of it gets a clear 4xx, never a 500 (issue 16, finding 7)."""

from __future__ import annotations

import base64
import io
import json
import re

import pytest
from flask import Request
from werkzeug.test import EnvironBuilder

from app.input_guard import MAX_REQUEST_BYTES
from app.sansio.inputs import MAX_JSON_DEPTH
from tests.conftest import csrf_token

PASSWORD = "correct horse"
NUL = "a\x00b"


def basic(username: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


@pytest.fixture
def bearer(client) -> dict[str, str]:
    client.post("/api/users", json={"username": "alice", "email": "alice@example.com", "password": PASSWORD})
    response = client.post("/api/tokens", headers=basic("alice", PASSWORD))
    assert response.status_code == 201
    return {"Authorization": f"Bearer {response.json['token']}"}


def refused_json(response, words: str = "NUL") -> None:
    assert response.status_code == 400, response.get_data(as_text=True)
    assert words in response.json["error"]


def refused_page(response) -> None:
    assert response.status_code == 400
    assert "NUL" in response.get_data(as_text=True)


# The seven endpoints that answered 500 on PostgreSQL, and the rest of the same class.


def test_nul_in_a_new_users_fields_is_refused(client):
    for field in ("username", "email", "password"):
        body = {"username": "bob", "email": "bob@example.com", "password": PASSWORD, field: NUL * 5}
        refused_json(client.post("/api/users", json=body))


def test_nul_in_basic_credentials_is_refused(client):
    refused_json(client.post("/api/tokens", headers=basic(NUL, PASSWORD)))
    refused_json(client.post("/api/tokens", headers=basic("alice", NUL)))


def test_nul_in_a_bearer_token_is_refused(client):
    refused_json(client.get("/api/tasks", headers={"Authorization": "Bearer a%00b".replace("%00", "\x00")}))


def test_nul_in_a_post_is_refused(client, bearer):
    refused_json(client.post("/api/posts", json={"body": "hello \x00 world"}, headers=bearer))
    assert client.get("/api/posts", headers=bearer).json == []


def test_nul_in_a_task_id_is_refused(client, bearer):
    refused_json(client.get("/api/tasks/a%00b", headers=bearer))
    refused_json(client.post("/api/tasks/a%00b/cancel", headers=bearer))


def test_nul_in_query_parameters_is_refused(client, bearer):
    refused_json(client.get("/api/search?q=a%00b", headers=bearer))
    refused_json(client.get("/api/notifications?since=1%00", headers=bearer))


def test_unpaired_surrogates_in_json_are_refused(client, bearer):
    # Valid JSON, but no database driver can encode the text it decodes to.
    body = b'{"body": "\\ud800 alone"}'
    response = client.post("/api/posts", data=body, content_type="application/json", headers=bearer)
    refused_json(response, "surrogates")
    body = b'{"name": "example_long_task", "params": {"\\u0000": 1}}'
    response = client.post("/api/tasks", data=body, content_type="application/json", headers=bearer)
    refused_json(response)


def test_nul_in_the_login_form_is_refused_with_a_message(client, auth):
    auth.register()
    page = client.get("/auth/login").get_data(as_text=True)
    response = client.post(
        "/auth/login", data={"csrf_token": csrf_token(page), "username": NUL, "password": PASSWORD}
    )
    refused_page(response)


def test_nul_in_the_registration_form_is_refused_with_a_message(client):
    page = client.get("/auth/register").get_data(as_text=True)
    form = {
        "csrf_token": csrf_token(page),
        "username": NUL,
        "email": "a@example.com",
        "password": PASSWORD,
        "password2": PASSWORD,
    }
    refused_page(client.post("/auth/register", data=form))


def test_nul_in_page_forms_and_queries_is_refused(client, auth):
    auth.register()
    auth.login()
    token = csrf_token(client.get("/").get_data(as_text=True))
    refused_page(client.post("/posts", data={"csrf_token": token, "body": NUL}))
    refused_page(client.post("/tasks", data={"csrf_token": token, "name": "example_long_task", "steps": NUL}))
    refused_page(client.get("/search?q=a%00b"))
    refused_page(client.post("/tasks/a%00b/cancel", data={"csrf_token": token}))


def test_nul_in_a_cookie_or_header_is_refused(client):
    client.set_cookie("remember_token", "1|\x00")
    refused_page(client.get("/auth/login"))
    client.delete_cookie("remember_token")
    refused_page(client.get("/auth/login", headers={"X-Anything": "\x00"}))


# Depth and size.


def test_json_nested_100000_deep_is_refused(client, bearer):
    deep = "[" * 100_000 + "]" * 100_000
    body = '{"name": "compute_primes", "params": ' + deep + "}"
    response = client.post("/api/tasks", data=body, content_type="application/json", headers=bearer)
    refused_json(response, f"deeper than {MAX_JSON_DEPTH}")


def test_json_just_past_the_bound_is_refused_and_within_it_is_read(client, bearer):
    def nested(depth: int) -> str:
        return json.dumps({"name": "compute_primes", "params": {"limit": 100}, "x": _nest(depth)})

    too_deep = nested(MAX_JSON_DEPTH + 1)
    refused_json(
        client.post("/api/tasks", data=too_deep, content_type="application/json", headers=bearer), "deeper"
    )
    response = client.post("/api/tasks", data=nested(8), content_type="application/json", headers=bearer)
    assert response.status_code == 202, response.json


def _nest(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


class BottomlessBody(io.RawIOBase):
    """A body as long as its Content-Length claims, produced only as it is read; counts what was."""

    def __init__(self) -> None:
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), 64 * 1024)
        buffer[:n] = b" " * n
        self.read_bytes += n
        return n


def post_bottomless(client, path: str, content_type: str, headers: dict[str, str]):
    body = BottomlessBody()
    environ = EnvironBuilder(
        path=path, method="POST", content_type=content_type, headers=headers
    ).get_environ()
    environ["wsgi.input"] = body
    environ["CONTENT_LENGTH"] = str(100 * 1024 * 1024)
    return client.open(Request(environ)), body


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/api/tasks", "application/json"),
        ("/api/users", "application/json"),
        ("/auth/login", "application/x-www-form-urlencoded"),
        ("/auth/login", "multipart/form-data; boundary=x"),
    ],
)
def test_a_100_mb_body_is_refused_unread(client, bearer, path, content_type):
    response, body = post_bottomless(client, path, content_type, bearer)
    assert response.status_code == 413
    if path.startswith("/api/"):
        assert "error" in response.json
    assert body.read_bytes <= MAX_REQUEST_BYTES


# The login's ``next``.


@pytest.mark.parametrize(
    "target",
    [
        "/tasks\r\nSet-Cookie: x=1",
        "/tasks\nX: y",
        "/\x7f",
        "/\\evil.example",
        "/\t/evil.example",
        "//evil.example",
    ],
)
def test_a_hostile_next_after_valid_credentials_goes_home(client, auth, target):
    auth.register()
    page = client.get("/auth/login").get_data(as_text=True)
    response = client.post(
        "/auth/login",
        query_string={"next": target},
        data={"csrf_token": csrf_token(page), "username": "alice", "password": PASSWORD},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert "Set-Cookie: x" not in str(response.headers)


def test_a_plain_next_is_still_followed(client, auth):
    auth.register()
    page = client.get("/auth/login").get_data(as_text=True)
    response = client.post(
        "/auth/login?next=/tasks%3Fa%3D1",
        data={"csrf_token": csrf_token(page), "username": "alice", "password": PASSWORD},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/tasks?a=1"


def test_refusals_name_what_was_wrong_without_echoing_it(client):
    response = client.post("/api/users", json={"username": "<b>\x00</b>", "email": "x@example.com"})
    assert response.status_code == 400
    assert not re.search("<b>", response.get_data(as_text=True))
