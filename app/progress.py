"""The one call that records a task's progress: commit to the database, then publish.

Committing first means a client that reconnects and reads the database never sees
less than what was pushed live. Status changes are compare-and-set in the database, so
when two processes race (a job finishing as the watchdog declares its worker lost, a
cancel as the job starts), exactly one transition wins and the loser is told.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm.attributes import set_committed_value

from app.channel import publish
from app.database import Outage
from app.extensions import broker, db
from app.models import NEXT_SEQ, Notification, Task, User, next_seq, utcnow
from app.sansio.estimate import rate_and_eta
from app.sansio.events import TASK_PROGRESS, ChannelMessage, percent
from app.sansio.identity import username_key
from app.sansio.status import TRANSITIONS, TaskStatus

# Built once: a statement built per call costs more than executing it. Its WHERE makes the
# change a compare-and-set on the status and the attempt the caller acts for, so an attempt
# that was given up on (its worker declared lost, the task retried) can never write over the
# attempt that replaced it. Its SET clause comes from the parameters' names, so a report
# always sets every column of EVENT_COLUMNS (unchanged ones to their current value): one
# shape, compiled once (see warm_up).
_TASKS = Task.__table__
_CLAIM = update(_TASKS).where(
    _TASKS.c.id == bindparam("b_id"),
    _TASKS.c.status.in_(bindparam("b_from", expanding=True)),
    _TASKS.c.attempt == bindparam("b_attempt"),
)
EVENT_COLUMNS = (
    "status",
    "started_at",
    "finished_at",
    "step",
    "total",
    "progress",
    "message",
    "error",
    "result",
    "result_file",
    "result_expires_at",
    "reported_at",
    "seq",
)
_NOTIFY = insert(Notification.__table__)


def warm_up() -> None:
    """Run every statement report() runs once, in a transaction rolled back, so that they are compiled.

    For processes that fork per job (the worker): each fork inherits the compiled
    statements instead of compiling them anew. The scratch user exists only inside the
    transaction.
    """
    users = User.__table__
    scratch = f"warm-up-{uuid.uuid4().hex}"
    try:
        # "!" matches no password: the row could never be logged into, even if it were kept.
        row = insert(users).values(
            username=scratch,
            username_key=username_key(scratch),
            email=f"{scratch}@invalid",
            password_hash="!",  # noqa: S106
        )
        user_id = db.session.execute(row).inserted_primary_key[0]
        db.session.execute(NEXT_SEQ, {"b_user_id": user_id})
        db.session.execute(
            _CLAIM,
            {**dict.fromkeys(EVENT_COLUMNS), "b_id": "", "b_from": [TaskStatus.QUEUED], "b_attempt": 1},
        )
        db.session.execute(_NOTIFY, {"user_id": user_id, "seq": 0, "name": TASK_PROGRESS, "payload": {}})
    finally:
        db.session.rollback()


def _commit_keeping(task: Task) -> None:
    """Commit, expiring everything the session holds but ``task``.

    Its row is exactly what this transaction wrote; expiring it would make the next report
    reload it. A change another process makes meanwhile (a cancel, the watchdog) still
    wins: the next report's compare-and-set fails and refreshes the row.
    """
    session = db.session()
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = True
    for obj in list(session.identity_map.values()):
        if obj is not task:
            session.expire(obj)


class TransitionLost(Exception):
    """The task's row moved on in another process; this report was not recorded."""


def payload(task: Task, now: float | None = None) -> dict[str, Any]:
    """The ``task_progress`` event (schema in app.sansio.protocol)."""
    now = time.time() if now is None else now
    running = task.status == TaskStatus.RUNNING
    started = task.started_at.timestamp() if task.started_at else None
    rate, eta = rate_and_eta(task.step, task.total, started, now) if running else (None, None)
    return {
        "task_id": task.id,
        "name": task.name,
        "status": task.status,
        "progress": task.progress,
        "step": task.step,
        "total": task.total,
        "message": task.message,
        "attempt": task.attempt,
        "max_attempts": task.max_attempts,
        "rate": rate,
        "eta": eta,
        "duration": task.duration,
        "has_result_file": task.result_file is not None,
        "seq": task.seq,
        "volatile": False,
        "ts": task.reported_at or task.created_at.timestamp(),
        "result": task.result,
        "error": task.error,
    }


def tick(
    user_id: int, stored: dict[str, Any], started: float, step: int, total: int, message: str
) -> dict[str, Any]:
    """Publish progress newer than the task's last stored event without storing it: a volatile event.

    Built from that stored event's payload, never from the task's row: reading an expired
    row autoflushes, which would open a write transaction (on SQLite, the database's one
    write lock) and hold it until the next stored event. It carries the stored event's seq
    and is never replayed: a client that was away gets the stored state, then the ticks
    that follow.
    """
    now = time.time()
    rate, eta = rate_and_eta(step, total, started, now)
    data = {
        **stored,
        "step": step,
        "total": total,
        "message": message[:256],
        "progress": percent(step, total),
        "rate": rate,
        "eta": eta,
        "duration": now - started,
        "ts": now,
        "volatile": True,
    }
    publish(broker.redis, broker.keys.channel, ChannelMessage(user_id, TASK_PROGRESS, data))
    return data


def report(
    task: Task,
    *,
    status: TaskStatus | None = None,
    step: int | None = None,
    total: int | None = None,
    message: str | None = None,
    wait: bool = False,
    held_attempt: int | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Record and push one event. ``fields`` sets other Task columns (result, error, attempt, ...).

    The change applies only if the row is still in the status the caller saw and still at
    the attempt the caller acts for: ``held_attempt``, by default the task's attempt as
    loaded. A job passes the attempt it started with, since a rollback reloads the row (and
    with it a newer attempt). Raises ``TransitionLost`` otherwise.
    With ``wait`` (a job's own reports), an unavailable database is waited for, up to
    DATABASE_WAIT; without it (a web request), its error is raised at once.
    """
    # A new task is written first.
    db.session.flush()
    # Taken before any try: a try that fails rolls back, and the row reloads as it is now.
    seen = _Seen(TaskStatus(task.status), task.attempt if held_attempt is None else held_attempt)
    change = (seen, status, step, total, message, fields)
    data = _record_waiting(task, change) if wait else _record(task, change)
    publish(
        broker.redis,
        broker.keys.channel,
        ChannelMessage(task.user_id, TASK_PROGRESS, dict(data)),
    )
    return data


@dataclass(frozen=True)
class _Seen:
    """What the caller saw of the task: the change applies only to a row still like this."""

    status: TaskStatus
    attempt: int


_Change = tuple[_Seen, TaskStatus | None, int | None, int | None, str | None, dict[str, Any]]


def _record(task: Task, change: _Change) -> dict[str, Any]:
    data = _stage(task, change)
    _commit_keeping(task)
    return data


def _record_waiting(task: Task, change: _Change) -> dict[str, Any]:
    """``_record``, tried again while the database is unavailable, recording the event once.

    A commit whose acknowledgement was lost may have been applied: before trying again, the
    event it sent is looked for. Found, it is the one recorded (a second try would store the
    event twice, or fail the compare-and-set on the status it already set).
    """
    sent: dict[str, Any] | None = None

    def attempt() -> dict[str, Any]:
        nonlocal sent
        if sent is not None and _stored(task.user_id, sent):
            db.session.refresh(task)
            _commit_keeping(task)
            return sent
        data = _stage(task, change)
        sent = data
        _commit_keeping(task)
        return data

    return Outage(f"task {task.id}").retry(attempt)


def _stored(user_id: int, event: dict[str, Any]) -> bool:
    stored = db.session.execute(
        select(Notification.payload).where(Notification.user_id == user_id, Notification.seq == event["seq"])
    ).scalar_one_or_none()
    # A seq handed out in a transaction that rolled back is handed out again, to another event.
    return stored is not None and stored["task_id"] == event["task_id"] and stored["ts"] == event["ts"]


def _stage(task: Task, change: _Change) -> dict[str, Any]:
    """Claim the task's row and add the event, uncommitted; returns the event's payload."""
    seen, status, step, total, message, fields = change
    previous = seen.status
    target = status or previous
    values: dict[str, Any] = {name: getattr(task, name) for name in EVENT_COLUMNS}
    values["status"] = target
    if status is not None:
        if status is TaskStatus.RUNNING and previous != TaskStatus.RUNNING:
            # Each attempt is timed from its own start, so rate and ETA stay honest after a retry.
            values["started_at"] = utcnow()
        if status.finished:
            values["finished_at"] = utcnow()
    if total is not None:
        values["total"] = total
    if step is not None:
        values["step"] = step
    if step is not None or total is not None:
        values["progress"] = percent(values["step"], values["total"])
    if status is TaskStatus.SUCCEEDED:
        values["progress"] = 100
    if message is not None:
        values["message"] = message[:256]
    values.update(fields)
    values["reported_at"] = time.time()
    values["seq"] = next_seq(task.user_id)
    # From the status the caller saw, not from any status that allows the target: a start
    # races another start of the same attempt, a cancel of a queued task races its start.
    allowed_from = [previous] if target in TRANSITIONS[previous] else []
    claimed = db.session.execute(
        _CLAIM, {**values, "b_id": task.id, "b_from": allowed_from, "b_attempt": seen.attempt}
    )
    if claimed.rowcount != 1:
        db.session.rollback()
        db.session.refresh(task)
        raise TransitionLost(f"task {task.id} is {task.status}; cannot record {target}")
    for name, value in values.items():
        set_committed_value(task, name, value)
    data = payload(task, values["reported_at"])
    user_id = task.user_id
    db.session.execute(_NOTIFY, {"user_id": user_id, "seq": task.seq, "name": TASK_PROGRESS, "payload": data})
    return data
