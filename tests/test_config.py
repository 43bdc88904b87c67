import os
import subprocess
import sys

import pytest

import config as settings
from tests.support import ROOT, free_port


def test_development_defaults():
    config = settings.from_env({})
    assert config["APP_ENV"] == "development"
    assert config["SECRET_KEY"] == settings.DEV_SECRET_KEY
    assert config["REDIS_URL"] == "redis://localhost:6379/0"
    assert config["TASK_QUEUE"] == "microblog-tasks"
    assert config["ASYNC_MODE"] == "eventlet"
    assert config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")
    assert config["SESSION_COOKIE_SECURE"] is False


@pytest.mark.parametrize("secret", ["", settings.DEV_SECRET_KEY])
def test_production_refuses_missing_or_development_secret(secret):
    with pytest.raises(settings.ConfigError, match="SECRET_KEY"):
        settings.from_env({"APP_ENV": "production", "SECRET_KEY": secret})


@pytest.mark.parametrize("secret", ["x", "correct horse battery staple", "s" * 31, "é" * 15])
def test_production_refuses_a_secret_shorter_than_32_bytes(secret):
    with pytest.raises(settings.ConfigError, match="at least 32 bytes") as refused:
        settings.from_env({"APP_ENV": "production", "SECRET_KEY": secret})
    assert "secrets.token_hex(32)" in str(refused.value), "the message says how to make one"


def test_a_secret_of_32_bytes_is_enough():
    assert settings.from_env({"APP_ENV": "production", "SECRET_KEY": "é" * 16})["SECRET_KEY"] == "é" * 16


def test_a_production_server_with_a_short_secret_does_not_start(tmp_path, redis_url):
    env = {
        **os.environ,
        "APP_ENV": "production",
        "SECRET_KEY": "x",
        "PORT": str(free_port()),
        # Where a server that did start would go: the test's own, not the defaults.
        "DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}",
        "REDIS_URL": redis_url,
        "RESULTS_DIR": str(tmp_path / "results"),
    }
    done = subprocess.run(
        [sys.executable, "run.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode != 0
    assert "SECRET_KEY must be at least 32 bytes" in done.stderr
    assert "secrets.token_hex(32)" in done.stderr


def test_production_with_a_secret():
    config = settings.from_env({"APP_ENV": "production", "SECRET_KEY": "x" * 64})
    assert config["SECRET_KEY"] == "x" * 64
    assert config["SESSION_COOKIE_SECURE"] is True


def test_unknown_environment_is_refused():
    with pytest.raises(settings.ConfigError, match="APP_ENV"):
        settings.from_env({"APP_ENV": "staging"})


@pytest.mark.parametrize("mode", ["eventlet", "gevent", "threading"])
def test_async_modes(mode):
    assert settings.from_env({"ASYNC_MODE": mode})["ASYNC_MODE"] == mode


def test_unknown_async_mode_is_refused():
    with pytest.raises(settings.ConfigError, match="ASYNC_MODE"):
        settings.from_env({"ASYNC_MODE": "asyncio"})


def test_integer_settings_are_checked():
    assert settings.from_env({"TOKEN_TTL": "60"})["TOKEN_TTL"] == 60
    with pytest.raises(settings.ConfigError, match="TOKEN_TTL"):
        settings.from_env({"TOKEN_TTL": "an hour"})


@pytest.mark.parametrize(
    "name",
    [
        "TOKEN_TTL",
        "NOTIFICATION_RETENTION",
        "RESULT_TTL",
        "WORKER_LOST_AFTER",
        "WATCHDOG_INTERVAL",
        "MAX_CONNECTIONS",
        "MAX_ACTIVE_TASKS_PER_USER",
        "MAIL_PORT",
    ],
)
def test_counts_and_durations_must_be_positive(name):
    assert settings.from_env({name: "1"})[name] == 1
    for bad in ("0", "-5"):
        with pytest.raises(settings.ConfigError, match=f"{name} must be at least 1, got {bad}"):
            settings.from_env({name: bad})


@pytest.mark.parametrize("name", ["REPLAY_LIMIT", "CANCEL_GRACE", "MAX_SOCKET_BACKLOG"])
def test_zero_is_a_meaningful_setting_but_negatives_are_refused(name):
    assert settings.from_env({name: "0"})[name] == 0
    with pytest.raises(settings.ConfigError, match=f"{name} must be at least 0, got -1"):
        settings.from_env({name: "-1"})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ],
)
def test_database_url(raw, expected):
    assert settings.from_env({"DATABASE_URL": raw})["SQLALCHEMY_DATABASE_URI"] == expected


def test_cors_origins_are_opt_in():
    assert settings.from_env({})["SOCKETIO_CORS_ORIGINS"] == []
    config = settings.from_env({"CORS_ORIGINS": "https://a.example,https://b.example"})
    assert config["SOCKETIO_CORS_ORIGINS"] == ["https://a.example", "https://b.example"]


def test_task_timeouts_override():
    assert settings.from_env({})["TASK_TIMEOUTS"] == {}
    config = settings.from_env({"TASK_TIMEOUTS": "export_posts=120, compute_primes=60"})
    assert config["TASK_TIMEOUTS"] == {"export_posts": 120, "compute_primes": 60}
    for bad in ("export_posts", "export_posts=soon", "export_posts=0"):
        with pytest.raises(settings.ConfigError, match="TASK_TIMEOUTS"):
            settings.from_env({"TASK_TIMEOUTS": bad})


@pytest.mark.parametrize(("raw", "expected"), [("", False), ("true", True), ("0", False), ("yes", True)])
def test_boolean_settings(raw, expected):
    assert settings.from_env({"MAIL_USE_TLS": raw})["MAIL_USE_TLS"] is expected


def test_boolean_settings_are_checked():
    with pytest.raises(settings.ConfigError, match="MAIL_USE_TLS"):
        settings.from_env({"MAIL_USE_TLS": "maybe"})


def test_progress_interval():
    assert settings.from_env({})["PROGRESS_MIN_INTERVAL"] == 0.05
    assert settings.from_env({"PROGRESS_MIN_INTERVAL": "0.5"})["PROGRESS_MIN_INTERVAL"] == 0.5
    for bad in ("fast", "-1"):
        with pytest.raises(settings.ConfigError, match="PROGRESS_MIN_INTERVAL"):
            settings.from_env({"PROGRESS_MIN_INTERVAL": bad})


def test_max_connections():
    assert settings.from_env({})["MAX_CONNECTIONS"] == 10_000
    assert settings.from_env({"MAX_CONNECTIONS": "50000"})["MAX_CONNECTIONS"] == 50_000


def test_max_socket_backlog():
    assert settings.from_env({})["MAX_SOCKET_BACKLOG"] == 100
    assert settings.from_env({"MAX_SOCKET_BACKLOG": "0"})["MAX_SOCKET_BACKLOG"] == 0
    with pytest.raises(settings.ConfigError, match="MAX_SOCKET_BACKLOG"):
        settings.from_env({"MAX_SOCKET_BACKLOG": "many"})


def test_stalled_socket_timeout():
    assert settings.from_env({})["STALLED_SOCKET_TIMEOUT"] == 10.0
    assert settings.from_env({"STALLED_SOCKET_TIMEOUT": "0"})["STALLED_SOCKET_TIMEOUT"] == 0
    assert settings.from_env({"STALLED_SOCKET_TIMEOUT": "2.5"})["STALLED_SOCKET_TIMEOUT"] == 2.5
    with pytest.raises(settings.ConfigError, match="STALLED_SOCKET_TIMEOUT"):
        settings.from_env({"STALLED_SOCKET_TIMEOUT": "soon"})


def test_idle_timeout():
    assert settings.from_env({})["HTTP_IDLE_TIMEOUT"] == 75
    assert settings.from_env({"HTTP_IDLE_TIMEOUT": "5"})["HTTP_IDLE_TIMEOUT"] == 5
    with pytest.raises(settings.ConfigError, match="HTTP_IDLE_TIMEOUT must be at least 1"):
        settings.from_env({"HTTP_IDLE_TIMEOUT": "0"})
    with pytest.raises(settings.ConfigError, match="HTTP_IDLE_TIMEOUT must be an integer"):
        settings.from_env({"HTTP_IDLE_TIMEOUT": "soon"})


def test_ping_interval_and_timeout():
    defaults = settings.from_env({})
    assert (defaults["PING_INTERVAL"], defaults["PING_TIMEOUT"]) == (25, 20)
    chosen = settings.from_env({"PING_INTERVAL": "10", "PING_TIMEOUT": "5"})
    assert (chosen["PING_INTERVAL"], chosen["PING_TIMEOUT"]) == (10, 5)
    for name in ("PING_INTERVAL", "PING_TIMEOUT"):
        with pytest.raises(settings.ConfigError, match=f"{name} must be at least 1"):
            settings.from_env({name: "0"})
        with pytest.raises(settings.ConfigError, match=f"{name} must be an integer"):
            settings.from_env({name: "0.5"})
