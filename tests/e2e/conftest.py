"""A real stack per test: ``python run.py`` and ``python -m worker`` as subprocesses on free ports."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from redis import Redis
from rq import Worker

import config as settings
from tests.support import ROOT, Process, free_port, wait_for


@dataclass
class LiveStack:
    base_url: str
    env: dict[str, str]
    redis: Redis
    log_dir: Path
    processes: list[Process] = field(default_factory=list)

    def start_web(self, name: str = "web", port: int | None = None) -> Process:
        port = port or free_port()
        env = {**self.env, "HOST": "127.0.0.1", "PORT": str(port)}
        proc = self._start(name, [sys.executable, "run.py"], env)
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: self._healthy(url) or not proc.alive(), 30, f"{name} to answer /healthz")
        assert proc.alive(), f"{name} exited:\n{proc.log()}"
        return proc

    def start_worker(self, name: str = "worker") -> Process:
        before = {w.name for w in self._workers()}
        proc = self._start(name, [sys.executable, "-m", "worker"], self.env)
        wait_for(
            lambda: {w.name for w in self._workers()} - before or not proc.alive(), 30, f"{name} to register"
        )
        assert proc.alive(), f"{name} exited:\n{proc.log()}"
        return proc

    def logs(self) -> str:
        return "\n".join(f"----- {p.name} -----\n{p.log()}" for p in self.processes)

    def _start(self, name: str, args: list[str], env: dict[str, str]) -> Process:
        proc = Process(name, args, env, self.log_dir)
        self.processes.append(proc)
        return proc

    def _workers(self) -> list[Worker]:
        queue = settings.from_env(self.env)["TASK_QUEUE"]
        return [w for w in Worker.all(connection=self.redis) if queue in w.queue_names()]

    @staticmethod
    def _healthy(url: str) -> bool:
        try:
            return requests.get(f"{url}/healthz", timeout=1).ok
        except requests.ConnectionError:
            return False

    # API helpers, as any HTTP client would use them.
    def create_user(self, username: str, password: str = "correct horse") -> str:
        r = requests.post(
            f"{self.base_url}/api/users",
            json={"username": username, "email": f"{username}@example.com", "password": password},
            timeout=10,
        )
        assert r.status_code == 201, r.text
        r = requests.post(f"{self.base_url}/api/tokens", auth=(username, password), timeout=10)
        assert r.status_code == 201, r.text
        return r.json()["token"]

    def start_task(self, token: str, name: str, **params: object) -> dict:
        r = requests.post(
            f"{self.base_url}/api/tasks",
            json={"name": name, "params": params},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert r.status_code == 202, r.text
        return r.json()


@pytest.fixture
def live_stack_env() -> dict[str, str]:
    """Extra environment for the stack's processes: override this fixture in a test module."""
    return {}


def stack_env(
    database_url: str, redis_url: str, secret: str, results_dir: Path, **extra: str
) -> dict[str, str]:
    """The environment of one deployment's processes: names not given here are the defaults."""
    return {
        **os.environ,
        "APP_ENV": "development",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": secret,
        "PYTHONUNBUFFERED": "1",
        "FLASK_APP": "app",
        "ASYNC_MODE": "eventlet",
        "RESULTS_DIR": str(results_dir),
        **extra,
    }


@contextlib.contextmanager
def running_stack(
    request: pytest.FixtureRequest, env: dict[str, str], redis: Redis, log_dir: Path
) -> Iterator[LiveStack]:
    """One deployment, migrated, with a web node and a worker; its processes are stopped on exit."""
    subprocess.run(
        [sys.executable, "-m", "flask", "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True
    )
    port = free_port()
    stack = LiveStack(f"http://127.0.0.1:{port}", env, redis, log_dir)
    try:
        stack.start_web(port=port)
        stack.start_worker()
        yield stack
    finally:
        for proc in stack.processes:
            proc.stop()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print(stack.logs())


@pytest.fixture
def live_stack(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    database_url: str,
    redis: Redis,
    redis_url: str,
    unique: str,
    live_stack_env: dict[str, str],
) -> Iterator[LiveStack]:
    env = stack_env(
        database_url,
        redis_url,
        "e2e-" + unique,
        tmp_path / "results",
        **{"TASK_QUEUE": unique, "ASYNC_MODE": getattr(request, "param", "eventlet"), **live_stack_env},
    )
    with running_stack(request, env, redis, tmp_path) as stack:
        yield stack


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
