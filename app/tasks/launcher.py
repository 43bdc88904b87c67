"""The web side of starting a task: validate, record, enqueue, announce."""

from __future__ import annotations

import uuid
from typing import Any

from redis.exceptions import RedisError

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


def start_task(user: User, name: str, raw_params: Any) -> Task:
    """Raise ``UnknownTaskType`` or ``ParamError`` before anything is stored."""
    task_type = CATALOGUE.get(name)
    if task_type is None:
        raise UnknownTaskType(name)
    params = validate(task_type.params, raw_params)
    task = Task(id=str(uuid.uuid4()), name=name, user_id=user.id, params=params, status=TaskStatus.QUEUED)
    db.session.add(task)
    try:
        # The row is committed before the job exists, so the worker always finds it.
        report(task, message="Queued")
        broker.queue.enqueue(
            "app.tasks.runtime.run_task",
            name,
            params,
            job_id=task.id,
            job_timeout=task_type.timeout,
            description=f"{name} for user {user.id}",
        )
    except RedisError as exc:
        # Nothing can be published either; the failed row is what the user will see on reload.
        db.session.rollback()
        task.status, task.message = TaskStatus.FAILED, "Failed"
        task.error = "The task queue is unavailable; please try again later."
        task.finished_at = utcnow()
        db.session.commit()
        raise QueueUnavailable(str(exc)) from exc
    return task
