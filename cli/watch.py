"""Following tasks over Socket.IO (docs/protocol.md): resume on every reconnect, show each event once.

The socket's handlers only queue what arrives; the main thread owns the seq tracker and the
terminal, so nothing here needs a lock, and Ctrl+C reaches the main thread.
"""

from __future__ import annotations

import json
import queue
import shutil
import sys
import time
from collections.abc import Callable
from typing import Any, Protocol, TextIO
from urllib.parse import quote

import socketio

from cli.api import Api, Unreachable
from cli.errors import FINAL_STATUSES, UNAVAILABLE, CliError, exit_code_for
from cli.render import clean, event_from_task, redraw, render_line
from cli.seq import SeqTracker, Verdict

WELCOME, TASK_PROGRESS, RESYNC, SESSION_ENDED, PROTOCOL_ERROR = (
    "welcome",
    "task_progress",
    "resync",
    "session_ended",
    "protocol_error",
)
SERVER_EVENTS = (WELCOME, TASK_PROGRESS, RESYNC, SESSION_ENDED, PROTOCOL_ERROR)
# Refusals that another attempt cannot cure; "progress channel unavailable" can.
FATAL_REFUSALS = frozenset({"authentication required", "invalid last_seq"})
# How often to ask the API about the watched task while a resync left its outcome unknown.
CHECK_INTERVAL = 2.0


class Output(Protocol):
    def event(self, name: str, data: Any) -> None: ...
    def task(self, event: dict[str, Any], verdict: Verdict) -> None: ...
    def api_task(self, task: dict[str, Any]) -> None: ...
    def status(self, text: str | None) -> None: ...
    def close(self) -> None: ...


class _LineOutput:
    """Writes lines to ``out``; connection status changes go to ``err``, once each."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self._out, self._err, self._status = out, err, None

    def status(self, text: str | None) -> None:
        if text and text != self._status:
            print(text, file=self._err, flush=True)
        self._status = text

    def close(self) -> None:
        pass


class JsonOutput(_LineOutput):
    """Each event as one line ``{"event": name, "data": ...}``, duplicates left out."""

    def event(self, name: str, data: Any) -> None:
        self._out.write(json.dumps({"event": name, "data": data}) + "\n")
        self._out.flush()

    def task(self, event: dict[str, Any], verdict: Verdict) -> None:
        self.event(TASK_PROGRESS, event)

    def api_task(self, task: dict[str, Any]) -> None:
        self.event("task", task)


class PlainOutput(_LineOutput):
    """A line per change, for pipes and log files."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        super().__init__(out, err)
        self._ascii = not _is_utf8(out)

    def event(self, name: str, data: Any) -> None:
        if name == RESYNC:
            print(
                f"resynced ({clean(data.get('reason'))}): showing current state", file=self._err, flush=True
            )

    def task(self, event: dict[str, Any], verdict: Verdict) -> None:
        if verdict is Verdict.LATEST:
            width = shutil.get_terminal_size((120, 24)).columns
            self._out.write(render_line(event, width, ascii_only=self._ascii) + "\n")
            self._out.flush()

    def api_task(self, task: dict[str, Any]) -> None:
        self.task(event_from_task(task), Verdict.LATEST)


class LiveOutput:
    """One line per task, redrawn in place, and a status line while the connection is down."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._ascii = not _is_utf8(out)
        self._tasks: dict[str, dict[str, Any]] = {}
        self._status: str | None = None
        self._drawn = 0

    def event(self, name: str, data: Any) -> None:
        if name == RESYNC:
            # Tasks that ended in the gap are not in the snapshot that follows: they would stay "running".
            self._tasks.clear()

    def task(self, event: dict[str, Any], verdict: Verdict) -> None:
        if verdict is Verdict.LATEST:
            self._tasks[event["task_id"]] = event
            self._draw()

    def api_task(self, task: dict[str, Any]) -> None:
        self.task(event_from_task(task), Verdict.LATEST)

    def status(self, text: str | None) -> None:
        if text != self._status:
            self._status = text
            self._draw()

    def close(self) -> None:
        if self._status is not None:
            self._status = None
            self._draw()

    def _draw(self) -> None:
        size = shutil.get_terminal_size()
        # One column spare: a line that fills the last column wraps on some terminals and breaks the count.
        width = max(20, size.columns - 1)
        lines = [render_line(e, width, ascii_only=self._ascii) for e in self._tasks.values()]
        if self._status:
            lines.append(self._status[:width])
        # The cursor cannot move above the screen: the newest tasks that fit, the older ones scroll away.
        lines = lines[-max(1, size.lines - 1) :]
        self._out.write(redraw(self._drawn, lines))
        self._out.flush()
        self._drawn = len(lines)


def make_output(as_json: bool, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> Output:
    if as_json:
        return JsonOutput(out, err)
    return LiveOutput(out) if out.isatty() else PlainOutput(out, err)


class Watcher:
    """Follows every task of the user, or only ``task_id`` and then ends with its outcome."""

    def __init__(
        self,
        api: Api,
        output: Output,
        *,
        task_id: str | None = None,
        last_seq: int | None = None,
    ) -> None:
        self._api = api
        self._output = output
        self._task_id = task_id
        self.tracker = SeqTracker(last_seq)
        self.final: dict[str, Any] | None = None
        self._inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._check_due: float | None = None

    def run(self) -> int:
        """The watched task's exit code once it ends (watching everything ends only by Ctrl+C).

        Raises ``CliError`` when the connection is refused or the server ends the session.
        """
        sio = socketio.Client(reconnection=True, handle_sigint=False)
        for name in (*SERVER_EVENTS, "connect", "disconnect", "connect_error"):
            sio.on(name, self._queue(name))
        try:
            sio.connect(self._api.base_url, auth=self._auth, transports=["websocket"], wait_timeout=10)
        except socketio.exceptions.ConnectionError as exc:
            message = self._refusal() or f"cannot connect to {self._api.base_url}: {exc}"
            raise CliError(UNAVAILABLE, message) from None
        try:
            while True:
                try:
                    name, data = self._inbox.get(timeout=0.5)
                except queue.Empty:
                    code = None
                else:
                    code = self.handle(name, data)
                if code is None and self._check_due is not None and time.monotonic() >= self._check_due:
                    code = self.check_task()
                if code is not None:
                    return code
        finally:
            sio.shutdown()
            self._output.close()

    def _auth(self) -> dict[str, Any]:
        # python-socketio calls this on every (re)connect: a reconnect resumes after what was received.
        last_seq = self.tracker.last_seq
        auth: dict[str, Any] = {"token": self._api.token}
        if last_seq is not None:
            auth["last_seq"] = last_seq
        return auth

    def _queue(self, name: str) -> Callable[..., None]:
        def handler(*args: Any) -> None:
            self._inbox.put((name, args[0] if args else None))

        return handler

    def _refusal(self) -> str | None:
        while True:
            try:
                name, data = self._inbox.get_nowait()
            except queue.Empty:
                return None
            if name == "connect_error":
                message = _refusal_message(data)
                if message is not None:
                    return message

    def handle(self, name: str, data: Any) -> int | None:
        """One received event (or connect/disconnect/connect_error); an exit code when the watch is over."""
        if name == "connect":
            self._output.status(None)
        elif name == "disconnect":
            self._output.status("connection lost; reconnecting...")
        elif name == "connect_error":
            message = _refusal_message(data)
            if message is not None and data.get("message") in FATAL_REFUSALS:
                raise CliError(UNAVAILABLE, message)
            self._output.status(f"cannot connect ({clean(message or data)}); retrying...")
        elif name == TASK_PROGRESS:
            return self._progress(data)
        elif isinstance(data, dict):
            self._output.event(name, data)
            if name == WELCOME and isinstance(data.get("last_seq"), int):
                self.tracker.welcome(data["last_seq"])
            elif name == RESYNC and isinstance(data.get("last_seq"), int):
                self.tracker.resync(data["last_seq"])
                # The snapshot lists unfinished tasks only: one that ended in the gap is not in it.
                if self._task_id is not None:
                    self._check_due = time.monotonic()
            elif name == SESSION_ENDED:
                raise CliError(
                    UNAVAILABLE,
                    f"the server ended this session ({clean(data.get('reason'))}); run `microblog-tasks login`",
                )
            elif name == PROTOCOL_ERROR:
                print(f"protocol error: {clean(data)}", file=sys.stderr, flush=True)
        return None

    def _progress(self, event: Any) -> int | None:
        if not (
            isinstance(event, dict)
            and isinstance(event.get("task_id"), str)
            and isinstance(event.get("seq"), int)
        ):
            return None
        ts = event.get("ts")
        verdict = self.tracker.accept(
            event["task_id"],
            event["seq"],
            volatile=event.get("volatile") is True,
            ts=ts if isinstance(ts, int | float) else None,
        )
        if verdict is Verdict.DUPLICATE or self._task_id not in (None, event["task_id"]):
            return None
        self._output.task(event, verdict)
        if self._task_id is not None and verdict is Verdict.LATEST and event.get("status") in FINAL_STATUSES:
            self.final = event
            return exit_code_for(event["status"])
        return None

    def check_task(self) -> int | None:
        try:
            task = self._api.get(f"/api/tasks/{quote(str(self._task_id), safe='')}")
        except Unreachable:
            self._check_due = time.monotonic() + CHECK_INTERVAL
            return None
        self._check_due = None
        if task.get("status") not in FINAL_STATUSES:
            return None  # its outcome is newer than the resync, so it arrives as a live event
        self._output.api_task(task)
        self.final = event_from_task(task)
        return exit_code_for(task["status"])


def _refusal_message(data: Any) -> str | None:
    """A refusal by the server (docs/protocol.md, "Refusals"), as a message for the user."""
    message = data.get("message") if isinstance(data, dict) else None
    if message == "authentication required":
        return "the server refused the token (expired or revoked); run `microblog-tasks login`"
    return message if isinstance(message, str) else None


def _is_utf8(stream: TextIO) -> bool:
    return (getattr(stream, "encoding", None) or "").lower().replace("-", "") == "utf8"
