"""The one call that records a task's progress: commit to the database, then publish.

Committing first means a client that reconnects and reads the database never sees
less than what was pushed live.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from flask import current_app

from app.channel import publish
from app.extensions import broker, db
from app.models import Notification, Task, next_seq, utcnow
from app.sansio.events import TASK_PROGRESS, ChannelMessage, TaskProgress, percent
from app.sansio.status import TaskStatus


def payload(task: Task) -> TaskProgress:
    return {
        "task_id": task.id,
        "name": task.name,
        "status": task.status,
        "progress": task.progress,
        "step": task.step,
        "total": task.total,
        "message": task.message,
        "seq": task.seq,
        "ts": task.reported_at or task.created_at.timestamp(),
        "result": task.result,
        "error": task.error,
    }


def report(
    task: Task,
    *,
    status: TaskStatus | None = None,
    step: int | None = None,
    total: int | None = None,
    message: str | None = None,
    result: Any = None,
    error: str | None = None,
) -> TaskProgress:
    now = utcnow()
    if status is not None:
        _transition(task, status, now)
    if total is not None:
        task.total = total
    if step is not None:
        task.step = step
    if step is not None or total is not None:
        task.progress = percent(task.step, task.total)
    if status is TaskStatus.SUCCEEDED:
        task.progress = 100
    if message is not None:
        task.message = message[:256]
    if result is not None:
        task.result = result
    if error is not None:
        task.error = error
    task.reported_at = time.time()
    task.seq = next_seq(task.user_id)
    data = payload(task)
    db.session.add(Notification(user_id=task.user_id, seq=task.seq, name=TASK_PROGRESS, payload=dict(data)))
    db.session.commit()
    publish(
        broker.redis,
        current_app.config["PROGRESS_CHANNEL"],
        ChannelMessage(task.user_id, TASK_PROGRESS, dict(data)),
    )
    return data


def _transition(task: Task, status: TaskStatus, now: datetime) -> None:
    task.status = status
    if status is TaskStatus.RUNNING and task.started_at is None:
        task.started_at = now
    if status.finished:
        task.finished_at = now
