"""What an operator needs to see: queues, workers, and running or failed tasks of every user."""

from __future__ import annotations

from typing import Any

from rq import Worker
from sqlalchemy import select

from app.broker import AWAY
from app.extensions import broker, db
from app.models import Task, User
from app.progress import payload
from app.sansio.status import TaskStatus

RECENT_FAILED = 50


def queues() -> list[dict[str, Any]] | None:
    """The queue's figures; ``None`` while Redis is away (the page says so and lists the tasks)."""
    try:
        return _queues()
    except AWAY:
        return None


def workers() -> list[dict[str, Any]] | None:
    try:
        return _workers()
    except AWAY:
        return None


def _queues() -> list[dict[str, Any]]:
    queue = broker.queue
    return [
        {
            "name": queue.name,
            "queued": queue.count,
            "started": queue.started_job_registry.count,
            "scheduled": queue.scheduled_job_registry.count,
            "failed": queue.failed_job_registry.count,
        }
    ]


def _workers() -> list[dict[str, Any]]:
    out = []
    for worker in Worker.all(queue=broker.queue):
        job_id = worker.get_current_job_id()
        out.append(
            {
                "name": worker.name,
                "hostname": worker.hostname,
                "pid": worker.pid,
                "state": str(worker.get_state()),
                "current_task": job_id,
                "last_heartbeat": worker.last_heartbeat.isoformat() if worker.last_heartbeat else None,
                "successful": worker.successful_job_count,
                "failed": worker.failed_job_count,
            }
        )
    return out


def tasks() -> list[dict[str, Any]]:
    """Unfinished tasks and the latest failures, each with its owner's name."""
    rows = list(
        db.session.execute(
            select(Task, User.username)
            .join(User, Task.user_id == User.id)
            .where(Task.status.in_(TaskStatus.unfinished()))
            .order_by(Task.created_at.desc())
        )
    )
    rows += list(
        db.session.execute(
            select(Task, User.username)
            .join(User, Task.user_id == User.id)
            .where(Task.status == TaskStatus.FAILED)
            .order_by(Task.finished_at.desc())
            .limit(RECENT_FAILED)
        )
    )
    return [{**payload(task), "user_id": task.user_id, "username": username} for task, username in rows]
