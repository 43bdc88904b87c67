"""The web side of starting a task: validate, check limits, record, enqueue, announce."""

from __future__ import annotations

import uuid
from typing import Any

from flask import current_app
from redis.exceptions import RedisError
from rq import Retry
from sqlalchemy import select, update

from app.extensions import broker, db
from app.models import Task, User, utcnow
from app.progress import report
from app.sansio.params import validate
from app.sansio.status import TaskStatus
from app.tasks.catalogue import CATALOGUE


class UnknownTaskType(LookupError):
    pass


class QueueUnavailable(RuntimeError):
    pass


class TaskLimit(Exception):
    """Starting this task would exceed a per-user limit; ``running`` is the task in the way."""

    def __init__(self, message: str, running: Task | None = None) -> None:
        super().__init__(message)
        self.running = running


class TooManyTasks(TaskLimit):
    pass


def start_task(user: User, name: str, raw_params: Any) -> Task:
    """Raise ``UnknownTaskType``, ``ParamError`` or ``TaskLimit`` before anything is stored."""
    task_type = CATALOGUE.get(name)
    if task_type is None:
        raise UnknownTaskType(name)
    params = validate(task_type.params, raw_params)
    _check_limits(user, name, task_type.concurrent_per_user)

    task = Task(
        id=str(uuid.uuid4()),
        name=name,
        user_id=user.id,
        params=params,
        status=TaskStatus.QUEUED,
        max_attempts=task_type.max_attempts,
    )
    db.session.add(task)
    try:
        # The row is committed before the job exists, so the worker always finds it.
        report(task, message="Queued")
        enqueue(task)
    except RedisError as exc:
        # Nothing can be published either; the failed row is what the user will see on reload.
        db.session.rollback()
        task.status, task.message = TaskStatus.FAILED, "Failed"
        task.error = "The task queue is unavailable; please try again later."
        task.finished_at = utcnow()
        db.session.commit()
        raise QueueUnavailable(str(exc)) from exc
    return task


def enqueue(task: Task) -> None:
    """Put the task's job on the queue, under the task's id, with its type's timeout and retries."""
    task_type = CATALOGUE[task.name]
    intervals = list(task_type.retry_intervals)
    broker.queue.enqueue(
        "app.tasks.runtime.run_task",
        task.name,
        task.params,
        job_id=task.id,
        job_timeout=current_app.config["TASK_TIMEOUTS"].get(task.name, task_type.timeout),
        retry=Retry(max=len(intervals), interval=intervals) if intervals else None,
        description=f"{task.name} for user {task.user_id}",
    )


def _check_limits(user: User, name: str, per_type: int) -> None:
    # A no-op write to the user's row, first in the transaction that inserts the task: the
    # row lock (PostgreSQL) or the write lock (SQLite) makes a concurrent start by the same
    # user wait until this one commits, and then count the task it added.
    db.session.execute(update(User).where(User.id == user.id).values(last_seq=User.last_seq))
    active = list(
        db.session.scalars(
            select(Task)
            .where(Task.user_id == user.id, Task.status.in_(TaskStatus.unfinished()))
            .order_by(Task.created_at)
        )
    )
    same = [t for t in active if t.name == name]
    if len(same) >= per_type:
        raise TaskLimit(
            f"{name} is already {same[0].status} (task {same[0].id}); wait for it or cancel it.", same[0]
        )
    cap = current_app.config["MAX_ACTIVE_TASKS_PER_USER"]
    if len(active) >= cap:
        raise TooManyTasks(f"You already have {cap} tasks queued or running; wait for one to finish.")
