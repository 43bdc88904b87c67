"""Ending a task that did not finish on its own: failed, retried, cancelled or lost.

Called from the worker's failure handler, from the watchdog and from the cancel
endpoint; every path ends in one persisted, pushed event.
"""

from __future__ import annotations

import contextlib
import logging

from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job

from app.broker import AWAY, SERIALIZER
from app.database import Outage
from app.extensions import broker, db
from app.models import Task, utcnow
from app.progress import TransitionLost, report
from app.sansio.status import TaskStatus
from app.tasks.launcher import enqueue
from app.tasks.runtime import discard_results

log = logging.getLogger(__name__)

WORKER_LOST = "The worker running this task stopped unexpectedly."
CANCEL_REQUEST_TTL = 24 * 3600


def job_ended_badly(
    task_id: str,
    *,
    stopped: bool,
    retry_in: int | None,
    error: str | None,
    traceback: str | None,
    wait: bool = False,
    attempt: int | None = None,
) -> None:
    """Map RQ's verdict on a job that raised, was killed or was stopped onto its task.

    ``wait``: a worker waits for an unavailable database (up to DATABASE_WAIT); the
    watchdog does not, it tries again at its next round. ``attempt`` is the attempt the job
    ran, when the caller knows it; otherwise the task's attempt as the caller loaded it. A
    verdict on an attempt the task has moved past changes nothing.
    """
    if wait:
        task = Outage(f"task {task_id}").retry(lambda: db.session.get(Task, task_id))
    else:
        task = db.session.get(Task, task_id)
    if task is None or TaskStatus(task.status).finished:
        return
    held = task.attempt if attempt is None else attempt
    try:
        if stopped:
            report(
                task,
                status=TaskStatus.CANCELLED,
                message="Cancelled",
                result_file=None,
                held_attempt=held,
                wait=wait,
            )
        elif retry_in is not None:
            report(
                task,
                status=TaskStatus.QUEUED,
                step=0,
                total=0,
                message=_retry_message(task, held, error or WORKER_LOST, retry_in),
                attempt=held + 1,
                traceback=traceback,
                result_file=None,
                held_attempt=held,
                wait=wait,
            )
        else:
            report(
                task,
                status=TaskStatus.FAILED,
                message="Failed",
                error=error or WORKER_LOST,
                traceback=traceback,
                result_file=None,
                held_attempt=held,
                wait=wait,
            )
    except TransitionLost:
        # Another process ended it first (it may well have succeeded), or this verdict is on
        # an attempt it has moved past: leave its results alone.
        log.info("task %s (attempt %s) already moved on to %s", task.id, held, task.status)
        return
    discard_results(task)


def _retry_message(task: Task, attempt: int, error: str, retry_in: int) -> str:
    wait = f" in {retry_in} s" if retry_in else ""
    return f"Attempt {attempt} of {task.max_attempts} failed: {error} Retrying{wait}."


class NotCancellable(Exception):
    pass


class NotRetryable(Exception):
    pass


def retry_failed(task: Task) -> None:
    """An operator sends a failed task back to the queue, as a new attempt of the same task."""
    if task.status != TaskStatus.FAILED:
        raise NotRetryable(f"only failed tasks can be retried; this one is {task.status}")
    # The job id is the task id: the old job must go before the new one can take it.
    with contextlib.suppress(NoSuchJobError):
        Job.fetch(task.id, connection=broker.redis, serializer=SERIALIZER).delete()
    broker.redis.delete(broker.keys.cancel(task.id))
    try:
        report(
            task,
            status=TaskStatus.QUEUED,
            step=0,
            total=0,
            message="Queued again by an operator",
            attempt=task.attempt + 1,
            max_attempts=max(task.max_attempts, task.attempt + 1),
            error=None,
            traceback=None,
            finished_at=None,
            cancel_requested_at=None,
        )
    except TransitionLost:
        raise NotRetryable(f"the task is now {task.status}") from None
    enqueue(task)


def request_cancel(task: Task) -> bool:
    """Cancel a task; ``True`` if it ended at once, ``False`` if a running job was asked to stop."""
    if TaskStatus(task.status).finished:
        raise NotCancellable(f"task is already {task.status}")
    if task.status == TaskStatus.QUEUED:
        try:
            report(task, status=TaskStatus.CANCELLED, message="Cancelled before it started")
        except TransitionLost:
            pass  # a worker took it a moment ago: cancel it as a running task below
        else:
            _cancel_job(task.id)
            return True
        if TaskStatus(task.status).finished:
            raise NotCancellable(f"task is already {task.status}")
    # The job sees this flag at its next progress report or sleep; the watchdog stops it
    # outright if it has not ended within CANCEL_GRACE.
    broker.redis.set(broker.keys.cancel(task.id), "1", ex=CANCEL_REQUEST_TTL)
    if task.cancel_requested_at is None:
        task.cancel_requested_at = utcnow()
        db.session.commit()
    return False


def _cancel_job(task_id: str) -> None:
    # Already gone, or started, or out of reach while Redis is away: either way run_task
    # finds the task cancelled and skips it.
    with contextlib.suppress(NoSuchJobError, InvalidJobOperation, *AWAY):
        Job.fetch(task_id, connection=broker.redis, serializer=SERIALIZER).cancel()
