"""What a user may do with a task, shared by the page and the API (each renders errors its way)."""

from __future__ import annotations

from flask import current_app, send_from_directory
from sqlalchemy import select
from werkzeug.exceptions import Conflict, Gone, NotFound
from werkzeug.wrappers import Response

from app.extensions import db
from app.models import Task, utcnow
from app.tasks.lifecycle import NotCancellable, request_cancel


def owned_task(task_id: str, user_id: int) -> Task:
    # Another user's task is indistinguishable from a missing one.
    task = db.session.scalar(select(Task).where(Task.id == task_id, Task.user_id == user_id))
    if task is None:
        raise NotFound("task not found")
    return task


def recent_tasks(user_id: int, limit: int) -> list[Task]:
    return list(
        db.session.scalars(
            select(Task).where(Task.user_id == user_id).order_by(Task.created_at.desc(), Task.id).limit(limit)
        )
    )


def cancel(task: Task) -> bool:
    """``True`` when the task ended at once, ``False`` when a running job was asked to stop."""
    try:
        return request_cancel(task)
    except NotCancellable as exc:
        raise Conflict(str(exc)) from None


def result_download(task: Task) -> Response:
    if task.result_file is None:
        if task.result_expires_at is not None and task.result_expires_at <= utcnow():
            raise Gone("the result has expired and was deleted")
        raise NotFound("this task has no result file")
    return send_from_directory(current_app.config["RESULTS_DIR"], task.result_file, as_attachment=True)
