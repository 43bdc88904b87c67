"""What runs inside the worker: the lifecycle around a task function."""

from __future__ import annotations

import logging
from typing import Any

from rq import get_current_job

from app.extensions import db
from app.models import Task
from app.progress import report
from app.sansio.status import TaskStatus
from app.tasks.catalogue import CATALOGUE

log = logging.getLogger(__name__)


class TaskError(Exception):
    """A failure whose message is meant for the user who started the task."""


class TaskContext:
    """Handed to a task function; its one job is to report progress."""

    def __init__(self, task: Task) -> None:
        self.task = task

    def report(self, step: int, total: int, message: str = "") -> None:
        report(self.task, step=step, total=total, message=message)


def run_task(name: str, params: dict[str, Any]) -> Any:
    job = get_current_job()
    if job is None:
        raise RuntimeError("run_task must run inside an RQ job")
    task = db.session.get(Task, job.id)
    if task is None:
        raise RuntimeError(f"no task row for job {job.id}")
    task_type = CATALOGUE[name]
    report(task, status=TaskStatus.RUNNING, message="Started")
    try:
        result = task_type.func(TaskContext(task), **params)
    except TaskError as exc:
        _fail(task, str(exc))
        raise
    except Exception:
        # The traceback goes to the worker log and RQ's failed registry; the user gets a plain message.
        _fail(task, "The task failed because of an internal error.")
        raise
    report(task, status=TaskStatus.SUCCEEDED, message="Done", result=result)
    return result


def _fail(task: Task, error: str) -> None:
    db.session.rollback()
    report(task, status=TaskStatus.FAILED, message="Failed", error=error)
