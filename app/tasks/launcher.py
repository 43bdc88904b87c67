"""The web side of starting a task: validate, check limits, record, enqueue, announce."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

from flask import current_app
from redis.exceptions import RedisError
from rq import Retry
from sqlalchemy import select, update

from app.extensions import broker, db
from app.models import Task, User
from app.progress import report
from app.sansio.params import validate
from app.sansio.status import TaskStatus
from app.tasks.catalogue import CATALOGUE

log = logging.getLogger(__name__)

RUN_TASK = "app.tasks.runtime.run_task"


class UnknownTaskType(LookupError):
    pass


QUEUE_UNAVAILABLE = (
    "The job queue is unavailable right now (Redis does not answer); please try again in a moment."
)


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
    """Raise ``UnknownTaskType``, ``ParamError``, ``QueueUnavailable``, ``TaskLimit``, ``NotPermitted``
    or ``OverLimit`` before anything is stored."""
    task_type = CATALOGUE.get(name)
    if task_type is None:
        raise UnknownTaskType(name)
    params = validate(task_type.params, raw_params)
    # Nothing is stored for a task that cannot be queued: its owner gets the 503 and no
    # failed task they never had. (Events are numbered per user, so a row written and taken
    # back would leave a hole in the sequence every client resumes from.) Asked before the
    # limits' transaction begins, so no lock is held while Redis does not answer.
    try:
        broker.redis.ping()
    except RedisError as exc:
        raise QueueUnavailable(str(exc)) from exc
    _check_limits(user, name, task_type.concurrent_per_user)
    if task_type.admit is not None:
        task_type.admit(user, params)
    task = Task(
        id=str(uuid.uuid4()),
        name=name,
        user_id=user.id,
        params=params,
        status=TaskStatus.QUEUED,
        max_attempts=task_type.max_attempts,
    )
    db.session.add(task)
    # The row is committed before the job exists, so the worker always finds it.
    report(task, message="Queued")
    try:
        enqueue(task)
    except RedisError:
        # Redis went away between the ping and here: the task is recorded and queued, and the
        # watchdog enqueues it from the database once Redis answers again.
        log.warning("task %s is stored but not enqueued: Redis went away; the watchdog will", task.id)
    return task


def enqueue(task: Task, delay: int = 0) -> None:
    """Put the task's job on the queue, under the task's id, in ``delay`` seconds if given.

    With its type's timeout, and the retries its attempt has left (a job enqueued again for
    a later attempt must not start the retry count over).
    """
    task_type = CATALOGUE[task.name]
    left = max(task.max_attempts - task.attempt, 0)
    intervals = list(task_type.retry_intervals[task.attempt - 1 :])[:left]
    job = {
        "job_id": task.id,
        "job_timeout": current_app.config["TASK_TIMEOUTS"].get(task.name, task_type.timeout),
        "retry": Retry(max=len(intervals), interval=intervals) if intervals else None,
        "description": f"{task.name} for user {task.user_id}",
    }
    if delay:
        broker.queue.enqueue_in(timedelta(seconds=delay), RUN_TASK, task.name, task.params, **job)
    else:
        broker.queue.enqueue(RUN_TASK, task.name, task.params, **job)


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
