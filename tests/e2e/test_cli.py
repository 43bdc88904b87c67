"""The command-line client as a user runs it: a subprocess against the real web server and worker."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import sqlalchemy as sa

from tests.support import ROOT, wait_for

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse"


class Cli:
    """The client's environment: its own config directory, the password for scripts."""

    def __init__(self, tmp_path: Path, base_url: str) -> None:
        self.dir = tmp_path / "cli"
        self.dir.mkdir()
        self.base_url = base_url
        self.env = {
            **os.environ,
            "XDG_CONFIG_HOME": str(self.dir / "config"),
            "MICROBLOG_PASSWORD": PASSWORD,
            "PYTHONUNBUFFERED": "1",
        }
        self.credentials = self.dir / "config" / "microblog-tasks" / "credentials.json"

    def run(self, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "cli", *args],
            cwd=ROOT,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self, *args: str) -> Running:
        return Running(self, args)

    def token(self) -> str:
        return json.loads(self.credentials.read_text())["token"]


class Running:
    """A long-running command (``watch``) whose output is read while it runs."""

    def __init__(self, cli: Cli, args: tuple[str, ...]) -> None:
        name = uuid.uuid4().hex[:8]
        self.out_path, self.err_path = cli.dir / f"{name}.out", cli.dir / f"{name}.err"
        with self.out_path.open("wb") as out, self.err_path.open("wb") as err:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "cli", *args], cwd=ROOT, env=cli.env, stdout=out, stderr=err
            )

    def events(self) -> list[dict]:
        text = self.out_path.read_text()
        complete = text[: text.rfind("\n") + 1]
        return [json.loads(line) for line in complete.splitlines()]

    def stderr(self) -> str:
        return self.err_path.read_text()

    def wait(self, timeout: float) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            raise AssertionError(f"still running after {timeout}s; stderr:\n{self.stderr()}") from None


@pytest.fixture
def cli(live_stack, tmp_path) -> Cli:
    live_stack.create_user("alice", PASSWORD)
    client = Cli(tmp_path, live_stack.base_url)
    done = client.run("login", "--url", live_stack.base_url, "--username", "alice")
    assert done.returncode == 0, done.stderr
    return client


def progress(events: list[dict], task_id: str) -> list[dict]:
    return [e["data"] for e in events if e["event"] == "task_progress" and e["data"]["task_id"] == task_id]


def api(cli: Cli, method: str, path: str) -> requests.Response:
    return requests.request(
        method, cli.base_url + path, headers={"Authorization": f"Bearer {cli.token()}"}, timeout=10
    )


def test_login_stores_a_private_token_and_the_commands_use_it(cli, live_stack):
    assert stat.S_IMODE(cli.credentials.stat().st_mode) == 0o600
    assert stat.S_IMODE(cli.credentials.parent.stat().st_mode) == 0o700
    stored = json.loads(cli.credentials.read_text())
    assert stored["url"] == live_stack.base_url and stored["username"] == "alice" and stored["expires_at"]
    assert api(cli, "GET", "/api/tasks").status_code == 200

    wrong = cli.run("login", "--username", "alice", MICROBLOG_PASSWORD="wrong password")
    assert wrong.returncode == 4 and "wrong username or password" in wrong.stderr
    assert json.loads(cli.credentials.read_text()) == stored, "a refused login keeps the one that works"

    types = cli.run("types")
    assert types.returncode == 0, types.stderr
    assert "example_long_task" in types.stdout and "steps" in types.stdout
    described = json.loads(cli.run("types", "--json").stdout)
    assert "example_long_task" in {t["name"] for t in described}

    refused = cli.run("start", "example_long_task", "steps=1000")
    assert refused.returncode == 2 and "steps must be between 1 and 100" in refused.stderr
    unknown = cli.run("start", "no_such_task")
    assert unknown.returncode == 2 and "unknown task type" in unknown.stderr

    started = cli.run("start", "example_long_task", "steps=1", "delay=0")
    assert started.returncode == 0, started.stderr
    task_id = started.stdout.strip()
    listed = cli.run("tasks")
    assert listed.returncode == 0 and task_id in listed.stdout
    assert task_id in {t["id"] for t in json.loads(cli.run("tasks", "--json").stdout)}


def test_start_and_watch_shows_every_step_in_order_and_exits_0(cli):
    done = cli.run("start", "example_long_task", "steps=5", "delay=0.1", "--watch", "--json")
    assert done.returncode == 0, done.stderr
    task_id = done.stderr.splitlines()[0]
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines[0]["event"] == "welcome"
    events = progress(lines, task_id)
    assert len(events) == len(lines) - 1, "only the started task's events"
    assert events[0]["status"] == "queued", "watched from its first event"
    assert events[-1]["status"] == "succeeded" and events[-1]["result"] == {"steps": 5}
    assert [e["step"] for e in events if e["status"] == "running" and e["total"]] == [0, 1, 2, 3, 4, 5]
    stored = [e["seq"] for e in events if not e["volatile"]]
    assert stored == list(range(stored[0], stored[-1] + 1)), "every stored event, in order, once"

    # Watching a task that has already ended tells its outcome at once.
    again = cli.run("watch", task_id, "--json")
    assert again.returncode == 0, again.stderr
    assert [e["status"] for e in progress([json.loads(x) for x in again.stdout.splitlines()], task_id)] == [
        "succeeded"
    ]
    plain = cli.run("watch", task_id)
    assert plain.returncode == 0 and "done" in plain.stdout and 'result: {"steps": 5}' in plain.stdout


def test_watch_exits_3_when_the_task_is_cancelled(cli):
    started = cli.run("start", "example_long_task", "steps=100", "delay=0.2")
    task_id = started.stdout.strip()
    watch = cli.start("watch", task_id, "--json")
    wait_for(lambda: any(e["status"] == "running" for e in progress(watch.events(), task_id)), 30, "progress")
    assert api(cli, "POST", f"/api/tasks/{task_id}/cancel").status_code == 202

    assert watch.wait(60) == 3, watch.stderr()
    assert progress(watch.events(), task_id)[-1]["status"] == "cancelled"


def test_watch_resumes_after_a_server_restart_with_every_event_once(cli, live_stack):
    task_id = cli.run("start", "example_long_task", "steps=30", "delay=0.3").stdout.strip()
    watch = cli.start("watch", task_id, "--json")
    wait_for(lambda: any(e["step"] >= 3 for e in progress(watch.events(), task_id)), 30, "step 3")

    web = next(p for p in live_stack.processes if p.name == "web")
    web.stop()
    seen = max(e["step"] for e in progress(watch.events(), task_id))
    engine = sa.create_engine(live_stack.env["DATABASE_URL"])
    try:
        # The worker goes on while no web server is up: those events can only come from the replay.
        wait_for(lambda: _stored_step(engine, task_id) >= seen + 3, 30, "progress while the web is down")
    finally:
        engine.dispose()
    live_stack.start_web(name="web-restarted", port=urlsplit(live_stack.base_url).port)

    assert watch.wait(90) == 0, watch.stderr()
    lines = watch.events()
    assert [e["event"] for e in lines].count("welcome") == 2, "connected, then reconnected"
    assert "connection lost" in watch.stderr()
    events = progress(lines, task_id)
    stored = [e["seq"] for e in events if not e["volatile"]]
    assert stored == list(range(stored[0], stored[-1] + 1)), "every stored event exactly once, in order"
    assert len({json.dumps(e, sort_keys=True) for e in events}) == len(events), "nothing printed twice"
    steps = [e["step"] for e in events if e["status"] == "running"]
    assert steps == sorted(steps) and steps[-1] == 30
    assert events[-1]["status"] == "succeeded"


def test_ctrl_c_ends_a_watch_quietly_and_logout_ends_the_session(cli):
    interrupted = cli.start("watch", "--json")
    wait_for(lambda: interrupted.events(), 30, "the welcome")
    interrupted.popen.send_signal(signal.SIGINT)
    assert interrupted.wait(30) == 0
    assert interrupted.stderr() == ""

    watching = cli.start("watch", "--json")
    wait_for(lambda: watching.events(), 30, "the welcome")
    logout = cli.run("logout")
    assert logout.returncode == 0, logout.stderr
    assert not cli.credentials.exists()
    assert watching.wait(30) == 4
    assert "token_revoked" in watching.stderr()
    assert watching.events()[-1] == {"event": "session_ended", "data": {"reason": "token_revoked"}}

    after = cli.run("tasks")
    assert after.returncode == 4 and "not logged in" in after.stderr


def _stored_step(engine: sa.Engine, task_id: str) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT step FROM tasks WHERE id = :id"), {"id": task_id}).scalar_one()
