from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis

import config as settings
from app import create_app, stop_background_services
from app.extensions import db
from app.models import User
from tests.support import (
    MailSink,
    PostgresServer,
    free_port,
    fresh_database,
    postgres_bin_dir,
    redis_answers,
    require_tool,
    start_redis_server,
)

CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The machine's Redis when it answers (database 15), else a private redis-server."""
    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    if redis_answers(url):
        yield url
        return
    proc, url = start_redis_server(tmp_path_factory.mktemp("redis"))
    try:
        yield url
    finally:
        proc.stop()


@pytest.fixture
def redis(redis_url: str) -> Iterator[Redis]:
    client = Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return fresh_database(os.environ.get("TEST_DATABASE_URL"), tmp_path)


@pytest.fixture
def private_postgres(tmp_path: Path) -> Iterator[PostgresServer]:
    """A PostgreSQL server of the test's own, which it may stop and start; killed by PID at the end."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        require_tool("/usr/lib/postgresql/<version>/bin/initdb", "apt-get install postgresql")
    server = PostgresServer(bin_dir, tmp_path)
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture
def unique() -> str:
    # A queue name of the test's own: its keys and its progress channel (named after the queue,
    # app/broker.py Keys) stay apart from a concurrent run's on the same database.
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def app_config(
    database_url: str, redis: Redis, redis_url: str, unique: str, tmp_path: Path
) -> dict[str, Any]:
    config = settings.from_env(
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "TASK_QUEUE": unique,
            "ASYNC_MODE": "threading",
            "RESULTS_DIR": str(tmp_path / "results"),
            # Tests that count events want every one of them; coalescing has its own tests.
            "PROGRESS_MIN_INTERVAL": "0",
            "PROGRESS_STORE_INTERVAL": "0",
        }
    )
    config["TESTING"] = True
    return config


@pytest.fixture
def make_app(app_config: dict[str, Any]) -> Iterator[Callable[..., Flask]]:
    """Apps built from the test config plus overrides; each is shut down (services, pool) after the test."""
    apps: list[Flask] = []

    def make(**overrides: Any) -> Flask:
        app = create_app({**app_config, **overrides})
        apps.append(app)
        return app

    yield make
    for app in apps:
        stop_background_services(app)
        with app.app_context():
            db.session.remove()
            # An open connection left to the garbage collector is a ResourceWarning, an error here.
            db.engine.dispose()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    app = make_app()
    with app.app_context():
        db.create_all()
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def csrf_token(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1) or match.group(2)


class AuthActions:
    def __init__(self, client: FlaskClient) -> None:
        self._client = client

    def register(self, username: str = "alice", password: str = "correct horse", email: str | None = None):
        page = self._client.get("/auth/register").get_data(as_text=True)
        return self._client.post(
            "/auth/register",
            data={
                "csrf_token": csrf_token(page),
                "username": username,
                "email": email or f"{username}@example.com",
                "password": password,
                "password2": password,
            },
        )

    def login(self, username: str = "alice", password: str = "correct horse"):
        page = self._client.get("/auth/login").get_data(as_text=True)
        return self._client.post(
            "/auth/login", data={"csrf_token": csrf_token(page), "username": username, "password": password}
        )

    def logout(self):
        page = self._client.get("/").get_data(as_text=True)
        return self._client.post("/auth/logout", data={"csrf_token": csrf_token(page)})


@pytest.fixture
def auth(client: FlaskClient) -> AuthActions:
    return AuthActions(client)


def make_user(username: str, password: str = "correct horse") -> User:
    user = User(username=username, email=f"{username}@example.com")
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    return user


@pytest.fixture
def token_for(app: Flask):
    """Create a user and return ``(user_id, token)`` for API and socket clients."""

    def create(username: str) -> tuple[int, str]:
        with app.app_context():
            user = make_user(username)
            token, _ = user.issue_token(3600)
            db.session.commit()
            return user.id, token

    return create


@pytest.fixture
def mail_sink() -> Iterator[MailSink]:
    """A real SMTP server (aiosmtpd) on a free port, keeping what it accepts."""
    sink = MailSink(free_port()).start()
    yield sink
    sink.stop()
