"""The README's run command, as a newcomer runs it: private Redis, worker and web server."""

from __future__ import annotations

import os
import subprocess

import pytest
import requests

from tests.support import ROOT, Process, free_port, redis_answers, wait_for

pytestmark = pytest.mark.e2e


def test_run_command_starts_redis_worker_and_web_and_stops_them(tmp_path):
    port, redis_port = free_port(), free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    assert not redis_answers(redis_url)
    env = {
        **os.environ,
        "PORT": str(port),
        "REDIS_URL": redis_url,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}",
    }
    dev = Process("dev", [str(ROOT / "scripts" / "dev")], env, tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _up(base) or not dev.alive(), 120, "the web server")
        assert dev.alive(), dev.log()
        assert redis_answers(redis_url), "a private Redis was started"

        requests.post(
            f"{base}/api/users",
            json={"username": "ann", "email": "ann@example.com", "password": "correct horse"},
            timeout=10,
        ).raise_for_status()
        token = requests.post(f"{base}/api/tokens", auth=("ann", "correct horse"), timeout=10).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        task = requests.post(
            f"{base}/api/tasks",
            json={"name": "example_long_task", "params": {"steps": 2, "delay": 0}},
            headers=headers,
            timeout=10,
        ).json()
        wait_for(
            lambda: (
                requests.get(f"{base}/api/tasks/{task['id']}", headers=headers, timeout=5).json()["status"]
                == "succeeded"
            ),
            30,
            "the worker to finish the task",
        )
    finally:
        dev.signal(2)  # Ctrl+C
        try:
            dev.popen.wait(30)
        finally:
            dev.stop()
    assert not redis_answers(redis_url), "the private Redis stops with the run command"
    assert not _up(base)


def test_run_command_without_redis_says_how_to_get_it(tmp_path):
    redis_url = f"redis://127.0.0.1:{free_port()}/0"
    out = subprocess.run(
        [str(ROOT / "scripts" / "dev")],
        env={**os.environ, "REDIS_URL": redis_url, "REDIS_SERVER": "/nonexistent/redis-server"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 1
    assert "redis-server is not installed" in out.stderr
    assert "apt-get install redis-server" in out.stderr


def _up(base: str) -> bool:
    try:
        return requests.get(f"{base}/healthz", timeout=1).ok
    except requests.ConnectionError:
        return False
