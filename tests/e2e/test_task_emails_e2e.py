"""send_batch_emails with real web and worker processes: an unreachable mail server is retried on RQ's schedule."""

from __future__ import annotations

import queue
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest
import requests

from tests.e2e.test_live_progress import Listener
from tests.support import ROOT, MailSink, free_port

pytestmark = pytest.mark.e2e


@pytest.fixture
def mail_port() -> int:
    # Nothing listens here until a test starts its MailSink on it.
    return free_port()


@pytest.fixture
def live_stack_env(mail_port: int) -> dict[str, str]:
    return {"MAIL_SERVER": "127.0.0.1", "MAIL_PORT": str(mail_port)}


@pytest.fixture
def alice(live_stack) -> Iterator[tuple[str, Listener]]:
    token = live_stack.create_user("alice")
    # Confirmed as an operator would, for an address they know (the mailed link has its own tests).
    subprocess.run(
        [sys.executable, "-m", "flask", "confirm-email", "alice"],
        cwd=ROOT,
        env=live_stack.env,
        check=True,
        capture_output=True,
    )
    r = requests.post(
        f"{live_stack.base_url}/api/posts",
        json={"body": "hello from the digest"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert r.status_code == 201, r.text
    listener = Listener(live_stack.base_url, {"token": token})
    yield token, listener
    listener.close()


def wait_for_event(
    listener: Listener, task_id: str, predicate: Callable[[dict], bool], timeout: float
) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            event = listener.events.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError(f"no matching event within {timeout}s; got {listener.received}") from None
        listener.received.append(event)
        if event["task_id"] == task_id and predicate(event):
            return event


def transitions(events: list[dict]) -> list[tuple[str, int]]:
    steps = [(e["status"], e["attempt"]) for e in events]
    return [s for i, s in enumerate(steps) if i == 0 or s != steps[i - 1]]


def test_an_unreachable_mail_server_is_retried_and_the_next_attempt_delivers(live_stack, alice, mail_port):
    token, listener = alice
    task_id = live_stack.start_task(token, "send_batch_emails", days=1)["id"]

    retry = wait_for_event(listener, task_id, lambda e: e["status"] == "queued" and e["attempt"] == 2, 20)
    assert retry["message"] == (
        f"Attempt 1 of 3 failed: The mail server at 127.0.0.1:{mail_port} could not be reached. Retrying in 3 s."
    )
    assert retry["error"] is None

    sink = MailSink(mail_port).start()
    try:
        events = listener.until_finished(task_id, timeout=30)
    finally:
        sink.stop()

    final = events[-1]
    assert (final["status"], final["error"]) == ("succeeded", None), live_stack.logs()
    assert final["result"] == {"sent": 1, "failed": [], "posts": 1}
    assert transitions(events) == [
        ("queued", 1),
        ("running", 1),
        ("queued", 2),
        ("running", 2),
        ("succeeded", 2),
    ]
    assert sink.recipients() == ["alice@example.com"]
    assert "hello from the digest" in sink.received[0].message.get_body(("plain",)).get_content()


def test_when_every_attempt_fails_the_user_sees_the_message_and_the_owner_can_read_the_traceback(
    live_stack, alice, mail_port
):
    token, listener = alice
    task_id = live_stack.start_task(token, "send_batch_emails", days=1)["id"]

    # Two retries, 3 s and 15 s apart, each picked up by the worker's scheduler within a second or so.
    events = listener.until_finished(task_id, timeout=40)

    unreachable = f"The mail server at 127.0.0.1:{mail_port} could not be reached."
    final = events[-1]
    assert (final["status"], final["error"], final["attempt"]) == ("failed", unreachable, 3), (
        live_stack.logs()
    )
    assert [e["message"] for e in events if e["status"] == "queued" and e["attempt"] > 1] == [
        f"Attempt 1 of 3 failed: {unreachable} Retrying in 3 s.",
        f"Attempt 2 of 3 failed: {unreachable} Retrying in 15 s.",
    ]
    assert "Traceback" not in str(events)

    r = requests.get(
        f"{live_stack.base_url}/api/tasks/{task_id}", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert r.status_code == 200
    assert r.json()["error"] == unreachable
    traceback = r.json()["traceback"]
    assert "ConnectionRefusedError" in traceback and "MailServerUnavailable" in traceback
    assert f"TaskError: {unreachable}" in traceback
