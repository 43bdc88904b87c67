"""What runs inside the work horse: the lifecycle around a task function."""

from __future__ import annotations

import logging
import shutil
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import current_app
from rq import get_current_job
from rq.job import Job
from rq.timeouts import JobTimeoutException
from sqlalchemy.exc import DBAPIError

from app.broker import unless_away
from app.database import Outage
from app.extensions import broker, db
from app.models import Task, utcnow
from app.progress import TransitionLost, payload, report, tick
from app.sansio.status import TaskStatus
from app.sansio.throttle import Throttle
from app.tasks.alarm import Alarm
from app.tasks.catalogue import CATALOGUE
from app.tasks.errors import AttemptAbandoned, RetryableTaskError, TaskCancelled, TaskError

log = logging.getLogger(__name__)

INTERNAL_ERROR = "The task failed because of an internal error."


class TaskContext:
    """Handed to a task function: report progress, notice cancellation, write result files."""

    # How often an interruptible sleep looks for a cancel request.
    CANCEL_POLL = 0.1

    def __init__(self, task: Task) -> None:
        self.task = task
        # The attempt this run is for: every report claims the row for it and no other.
        self.attempt = task.attempt
        self.result_file: str | None = None
        # The running task's last stored event; ticks are built from it, never from the row.
        self._stored = payload(task)
        self._user_id = task.user_id
        self._started = task.started_at.timestamp() if task.started_at else time.time()
        # The latest (step, total) reported but not stored yet, for the final event.
        self._unstored: tuple[int, int] | None = None
        self._cancel_key = broker.keys.cancel(task.id)
        self._redis = broker.redis
        self._results_dir = Path(current_app.config["RESULTS_DIR"])
        self._ticks = Throttle(current_app.config["PROGRESS_MIN_INTERVAL"])
        # The running event was stored a moment ago: the interval runs from there, so a
        # report at the start of the work is a tick, not a second stored event.
        self._stores = Throttle(current_app.config["PROGRESS_STORE_INTERVAL"], since=time.monotonic())
        # Looking for a cancel request costs a Redis round trip, as much as a tick: a tight
        # loop looks every CANCEL_POLL, whatever the publishing rate.
        self._cancel_checks = Throttle(self.CANCEL_POLL)
        # The (step, total) of the last final step published, so that it is published once.
        self._final: tuple[int, int] | None = None
        # Until then no report is due for storing, publishing or a cancel check; the alarm
        # rings then, so that a report before it reads a flag instead of the clock.
        self._quiet_until = float("-inf")
        self._alarm = Alarm()
        # Progress stored while the database is away is published as ticks instead; the
        # task gives up only when it stays away longer than DATABASE_WAIT.
        self._outage = Outage(f"task {task.id}")

    @property
    def user_id(self) -> int:
        return self._user_id

    def report(self, step: int, total: int, message: str = "") -> None:
        """Report progress; cheap enough to call in a tight loop.

        Coalesced: stored (and published with a new seq) at most every
        PROGRESS_STORE_INTERVAL, published in between as a volatile tick at most every
        PROGRESS_MIN_INTERVAL, otherwise only remembered for the next event. The last step
        is always published; the task's final event stores it.
        """
        if step < total and not self._alarm.rang:
            # The hot path of a tight loop: one attribute read and two comparisons.
            self._unstored = (step, total)
            return
        now = time.monotonic()
        if step < total and now < self._quiet_until:
            # The alarm rang a little early.
            self._unstored = (step, total)
            return
        try:
            self._report_due(step, total, message, now)
        finally:
            self._quiet_until = min(self._ticks.due, self._stores.due, self._cancel_checks.due)
            self._alarm.set(self._quiet_until, now)

    def _report_due(self, step: int, total: int, message: str, now: float) -> None:
        if self._stores.ready(now):
            self._ticks.ready(now, final=True)
            self._unstored = None
            self.check_cancelled()
            try:
                self._stored = report(
                    self.task, step=step, total=total, message=message, held_attempt=self.attempt
                )
            except TransitionLost:
                raise AttemptAbandoned from None
            except DBAPIError as exc:
                self._outage.failed(exc)
                # Not stored: the next report due stores it (or a later step). Ticks need no database.
                self._unstored = (step, total)
                tick(self._user_id, self._stored, self._started, step, total, message)
                return
            self._outage.recovered()
            return
        self._unstored = (step, total)
        self.check_cancelled(now)
        last = (step, total) if step >= total else None
        if self._ticks.ready(now, final=last is not None and last != self._final):
            self._final = last
            tick(self._user_id, self._stored, self._started, step, total, message)

    def latest(self) -> tuple[int, int]:
        """The latest (step, total) reported, stored or not: what the final event carries."""
        if self._unstored is not None:
            return self._unstored
        return self.task.step, self.task.total

    def check_cancelled(self, now: float | None = None) -> None:
        if now is not None and not self._cancel_checks.ready(now):
            return
        # While Redis is away no cancel request can be made or seen: the job goes on.
        if unless_away(self._redis.exists, self._cancel_key, default=0):
            raise TaskCancelled

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.check_cancelled()
            time.sleep(min(left, self.CANCEL_POLL))

    def result_path(self, filename: str) -> Path:
        """Where to write the task's downloadable result (one file per task, offered once it succeeds)."""
        directory = result_dir(self._results_dir, self.task.id)
        directory.mkdir(parents=True, exist_ok=True)
        self.result_file = f"{self.task.id}/{filename}"
        return directory / filename


def result_dir(results_dir: Path, task_id: str) -> Path:
    return results_dir / task_id


def discard_results(task: Task) -> None:
    """Remove the files a task that did not succeed left behind."""
    shutil.rmtree(result_dir(Path(current_app.config["RESULTS_DIR"]), task.id), ignore_errors=True)


def run_task(name: str, params: dict[str, Any]) -> Any:
    job = get_current_job()
    if job is None:
        raise RuntimeError("run_task must run inside an RQ job")
    task = Outage(f"task {job.id}").retry(lambda: db.session.get(Task, job.id))
    if task is None:
        raise RuntimeError(f"no task row for job {job.id}")
    task_type = CATALOGUE[name]
    attempt = task.attempt
    try:
        report(
            task,
            status=TaskStatus.RUNNING,
            step=0,
            total=0,
            message=f"Started (attempt {attempt} of {task.max_attempts})" if attempt > 1 else "Started",
            error=None,
            held_attempt=attempt,
            wait=True,
        )
    except TransitionLost:
        log.info("task %s was %s before it started; not running it", task.id, task.status)
        return None
    _record_attempt(job, attempt)

    ctx = TaskContext(task)
    try:
        result = task_type.func(ctx, **params)
    except AttemptAbandoned:
        db.session.rollback()
        _log_abandoned(task, attempt)
        return None
    except TaskCancelled:
        db.session.rollback()
        try:
            report(
                task,
                status=TaskStatus.CANCELLED,
                message="Cancelled",
                result_file=None,
                held_attempt=attempt,
                wait=True,
            )
        except TransitionLost:
            _log_abandoned(task, attempt)
            return None
        discard_results(task)
        return None
    except Exception as exc:
        db.session.rollback()
        # The worker's failure handler decides between retry and failure, and discards the
        # results if this attempt is still the task's; it reads these.
        job.meta["error"] = _user_message(exc, job.timeout)
        job.meta["retryable"] = isinstance(exc, RetryableTaskError)
        # The handler runs in this process and reads them from this job object; saved, they
        # also show in RQ's registries, which can wait until Redis answers again.
        unless_away(job.save_meta, default=None)
        raise

    step, total = ctx.latest()
    expires = utcnow() + timedelta(seconds=current_app.config["RESULT_TTL"]) if ctx.result_file else None
    try:
        report(
            task,
            status=TaskStatus.SUCCEEDED,
            step=step,
            total=total,
            message="Done",
            result=result,
            result_file=ctx.result_file,
            result_expires_at=expires,
            held_attempt=attempt,
            wait=True,
        )
    except TransitionLost:
        _log_abandoned(task, attempt)
        return None
    return result


def _record_attempt(job: Job, attempt: int) -> None:
    # The worker's failure handler reads which attempt this run was for (the task row may
    # hold a newer one by then); what an earlier attempt left there is not this run's.
    job.meta.pop("error", None)
    job.meta.pop("retryable", None)
    job.meta["attempt"] = attempt
    # The horse's copy is what its own failure handler reads; the parent, if the horse dies,
    # reads Redis, and falls back to the task's attempt while Redis was away.
    unless_away(job.save_meta, default=None)


def _log_abandoned(task: Task, attempt: int) -> None:
    log.info("task %s: attempt %s stopped, the task moved on without it (%s)", task.id, attempt, task.status)


def _user_message(exc: BaseException, timeout: int | None) -> str:
    if isinstance(exc, JobTimeoutException):
        return f"The task timed out after {timeout} seconds."
    if isinstance(exc, TaskError):
        return str(exc)
    return INTERNAL_ERROR
