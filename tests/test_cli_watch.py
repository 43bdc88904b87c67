"""The watcher's handling of each received event, and its outputs, without a socket."""

from __future__ import annotations

import io
import json

import pytest

from cli.api import Unreachable
from cli.errors import UNAVAILABLE, CliError
from cli.seq import Verdict
from cli.watch import JsonOutput, LiveOutput, PlainOutput, Watcher, make_output


def event(seq, task_id="t1", status="running", step=1, **extra):
    return {
        "task_id": task_id,
        "name": "example_long_task",
        "status": status,
        "progress": step * 10,
        "step": step,
        "total": 10,
        "message": f"Step {step}",
        "attempt": 1,
        "max_attempts": 1,
        "rate": None,
        "eta": None,
        "duration": 1.0,
        "has_result_file": False,
        "seq": seq,
        "volatile": False,
        "ts": float(seq),
        "result": None,
        "error": None,
        **extra,
    }


class FakeApi:
    base_url = "http://127.0.0.1:1"
    token = "tok"

    def __init__(self, *answers):
        self.answers = list(answers)
        self.asked = []

    def get(self, path):
        self.asked.append(path)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


class Recorder:
    def __init__(self):
        self.tasks, self.events, self.api_tasks, self.statuses = [], [], [], []

    def event(self, name, data):
        self.events.append(name)

    def task(self, data, verdict):
        self.tasks.append((data["seq"], verdict))

    def api_task(self, task):
        self.api_tasks.append(task)

    def status(self, text):
        self.statuses.append(text)

    def close(self):
        pass


def test_watching_one_task_ends_with_its_outcome_and_shows_only_it():
    out = Recorder()
    w = Watcher(FakeApi(), out, task_id="t1", last_seq=4)
    assert w.handle("welcome", {"protocol": 1, "user_id": 1, "username": "a", "last_seq": 9}) is None
    assert w.handle("task_progress", event(5)) is None
    assert w.handle("task_progress", event(6, task_id="other")) is None
    assert w.handle("task_progress", event(5)) is None
    assert w.handle("task_progress", event(7, status="cancelled")) == 3
    assert out.tasks == [(5, Verdict.LATEST), (7, Verdict.LATEST)]
    assert w.tracker.last_seq == 7, "the other task's event still counts for resuming"
    assert w.final["status"] == "cancelled"


@pytest.mark.parametrize(("status", "code"), [("succeeded", 0), ("failed", 1), ("cancelled", 3)])
def test_exit_code_per_outcome(status, code):
    w = Watcher(FakeApi(), Recorder(), task_id="t1", last_seq=0)
    assert w.handle("task_progress", event(1, status=status)) == code


def test_watching_everything_never_ends_on_an_outcome():
    w = Watcher(FakeApi(), Recorder())
    w.handle("welcome", {"last_seq": 0})
    assert w.handle("task_progress", event(1, status="succeeded")) is None


def test_each_reconnect_resumes_from_the_current_resume_point():
    w = Watcher(FakeApi(), Recorder())
    assert w._auth() == {"token": "tok"}
    w.handle("welcome", {"last_seq": 3})
    w.handle("task_progress", event(4))
    w.handle("task_progress", event(4, volatile=True, ts=4.5))
    assert w._auth() == {"token": "tok", "last_seq": 4}


def test_a_resync_asks_the_api_whether_the_task_ended_in_the_gap():
    api = FakeApi(
        Unreachable("down"), {"id": "t1", "name": "x", "status": "failed", "error": "boom", "seq": 8}
    )
    out = Recorder()
    w = Watcher(api, out, task_id="t1", last_seq=2)
    assert w.handle("resync", {"reason": "retention", "last_seq": 9}) is None
    assert w.check_task() is None, "unreachable: asked again later"
    assert w.check_task() == 1
    assert api.asked == ["/api/tasks/t1", "/api/tasks/t1"]
    assert out.api_tasks[0]["status"] == "failed" and w.final["error"] == "boom"


def test_a_resync_with_the_task_still_running_waits_for_its_live_outcome():
    w = Watcher(FakeApi({"id": "t1", "status": "running", "seq": 8}), Recorder(), task_id="t1", last_seq=2)
    w.handle("resync", {"reason": "too_many", "last_seq": 9})
    assert w.check_task() is None
    assert w.handle("task_progress", event(10, status="succeeded")) == 0


def test_the_end_of_the_session_is_exit_4():
    w = Watcher(FakeApi(), Recorder())
    with pytest.raises(CliError) as info:
        w.handle("session_ended", {"reason": "token_revoked"})
    assert info.value.code == UNAVAILABLE and "token_revoked" in info.value.message


def test_a_rejected_token_ends_the_watch_and_passing_trouble_is_retried():
    out = Recorder()
    w = Watcher(FakeApi(), out)
    w.handle("disconnect", "transport error")
    w.handle("connect_error", "Connection error")
    w.handle("connect_error", {"message": "progress channel unavailable"})
    w.handle("connect", None)
    assert out.statuses[0].startswith("connection lost")
    assert "Connection error" in out.statuses[1] and "progress channel" in out.statuses[2]
    assert out.statuses[-1] is None
    with pytest.raises(CliError) as info:
        w.handle("connect_error", {"message": "authentication required"})
    assert info.value.code == UNAVAILABLE and "login" in info.value.message


def test_malformed_events_are_ignored():
    w = Watcher(FakeApi(), Recorder(), task_id="t1", last_seq=0)
    assert w.handle("task_progress", "nonsense") is None
    assert w.handle("task_progress", {"task_id": "t1"}) is None
    assert w.handle("welcome", None) is None


def test_json_output_prints_every_new_event_once_per_line():
    out, err = io.StringIO(), io.StringIO()
    w = Watcher(FakeApi(), JsonOutput(out, err), task_id="t1", last_seq=4)
    w.handle("welcome", {"last_seq": 9})
    for e in (event(6, step=2), event(5, step=1), event(6, step=2), event(6, step=3, volatile=True, ts=6.5)):
        w.handle("task_progress", e)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["welcome", "task_progress", "task_progress", "task_progress"]
    assert [line["data"]["step"] for line in lines[1:]] == [2, 1, 3], (
        "the late one is printed, the repeat is not"
    )


def test_plain_output_prints_a_line_per_change_of_what_is_shown():
    out, err = io.StringIO(), io.StringIO()
    plain = PlainOutput(out, err)
    plain.task(event(2, step=2), Verdict.LATEST)
    plain.task(event(1, step=1), Verdict.STALE)
    plain.status("connection lost")
    plain.status("connection lost")
    assert len(out.getvalue().splitlines()) == 1 and "Step 2" in out.getvalue()
    assert err.getvalue() == "connection lost\n"


def test_live_output_redraws_one_line_per_task_and_a_status_line():
    out = io.StringIO()
    live = LiveOutput(out)
    live.task(event(1, task_id="aaaaaaaa"), Verdict.LATEST)
    live.task(event(2, task_id="bbbbbbbb"), Verdict.LATEST)
    live.status("connection lost; reconnecting...")
    live.task(event(3, task_id="aaaaaaaa", step=5), Verdict.LATEST)
    live.close()
    frames = out.getvalue().split("\x1b[J")[:-1]
    assert len(frames) == 5
    assert frames[1].startswith("\r\x1b[1A") and frames[3].startswith("\r\x1b[3A")
    assert frames[3].count("\x1b[2K") == 3 and "reconnecting" in frames[3]
    assert frames[4].count("\x1b[2K") == 2 and "reconnecting" not in frames[4], "the status line goes away"


def test_the_output_follows_the_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert isinstance(make_output(True, Tty(), io.StringIO()), JsonOutput)
    assert isinstance(make_output(False, Tty(), io.StringIO()), LiveOutput)
    assert isinstance(make_output(False, io.StringIO(), io.StringIO()), PlainOutput)


def test_live_output_keeps_to_the_screen_and_starts_over_on_resync(monkeypatch):
    monkeypatch.setenv("LINES", "4")
    monkeypatch.setenv("COLUMNS", "100")
    out = io.StringIO()
    live = LiveOutput(out)
    for n in range(6):
        live.task(event(n + 1, task_id=f"task{n}xxx"), Verdict.LATEST)
    last = out.getvalue().split("\x1b[J")[-2]
    assert last.count("\x1b[2K") == 3 and "task5xxx" in last and "task2xxx" not in last
    live.event("resync", {"reason": "retention", "last_seq": 50})
    live.task(event(49, task_id="task9xxx"), Verdict.LATEST)
    last = out.getvalue().split("\x1b[J")[-2]
    assert last.count("\x1b[2K") == 1 and "task9xxx" in last
