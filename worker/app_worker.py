from __future__ import annotations

from typing import Any

from flask import Flask
from redis.exceptions import RedisError
from rq import Queue, Worker
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.executions import Execution
from rq.job import Job
from sqlalchemy.orm import configure_mappers

from app.broker import Keys
from app.extensions import db
from app.models import Task
from app.progress import warm_up
from app.tasks.lifecycle import job_ended_badly
from worker.parent_death import die_with_parent
from worker.scheduler import AppScheduler


class AppWorker(Worker):
    """An RQ worker that runs each job in an app context and keeps its task's lease.

    The app context is pushed in the work horse, per job, so each job gets its own
    database session and nothing is pushed at import time. The lease is a short-lived
    Redis key the parent process renews while the job runs: when the whole worker dies
    (SIGKILL, a lost machine), the lease expires and the web's watchdog ends the task
    within WORKER_LOST_AFTER seconds instead of RQ's minutes.
    """

    def __init__(self, *args: Any, app: Flask, **kwargs: Any) -> None:
        lease_ttl = app.config["WORKER_LOST_AFTER"]
        kwargs.setdefault("job_monitoring_interval", max(1, lease_ttl // 3))
        super().__init__(*args, **kwargs)
        self.app = app
        self._lease_ttl = lease_ttl
        self._keys: Keys = app.extensions["broker"].keys
        self._warm_up()

    def _warm_up(self) -> None:
        # Each job runs in a fresh fork of this process, so whatever SQLAlchemy builds lazily
        # (mapper configuration, compiled statements) would be rebuilt by every job, a few
        # milliseconds each time. Built once here, every fork inherits it.
        with self.app.app_context():
            configure_mappers()
            db.session.get(Task, "")
            warm_up()

    def execute_job(self, job: Job, queue: Queue) -> None:
        lease = self._keys.lease(job.id)
        self.connection.set(lease, self.name, ex=self._lease_ttl)
        try:
            super().execute_job(job, queue)
        finally:
            self.connection.delete(lease)

    def maintain_heartbeats(self, job: Job, execution: Execution) -> None:
        super().maintain_heartbeats(job, execution)
        self.connection.set(self._keys.lease(job.id), self.name, ex=self._lease_ttl)

    def perform_job(self, job: Job, queue: Queue, execution: Execution) -> bool:
        with self.app.app_context():
            # Connections inherited through fork belong to the parent: never reuse them here.
            db.engine.dispose(close=False)
            return super().perform_job(job, queue, execution)

    def handle_job_failure(
        self,
        job: Job,
        queue: Queue,
        started_job_registry: Any = None,
        exc_string: str = "",
        execution: Execution | None = None,
    ) -> None:
        # Runs in the horse when the job raised, in this process when the horse was killed
        # or the job stopped on request. Decide before RQ consumes the retry: only passing
        # failures are retried (a task's own verdict, or its worker dying under it), never a
        # bug, a timeout or a cancel.
        attempt = self._attempt_of(job)
        stopped = self._stopped_job_id == job.id
        raised = "error" in job.meta
        if stopped or (raised and not job.meta.get("retryable")):
            job.retries_left = 0
        retry_in = job.get_retry_interval() if job.should_retry else None
        super().handle_job_failure(job, queue, started_job_registry, exc_string, execution)
        with self.app.app_context():
            job_ended_badly(
                job.id,
                stopped=stopped,
                retry_in=retry_in,
                error=job.meta.get("error"),
                traceback=exc_string or None,
                attempt=attempt,
            )

    def _attempt_of(self, job: Job) -> int | None:
        """The attempt the failed run was for, as run_task recorded it; None if it never started.

        This process's copy of the job is the one it dequeued: when the work horse is
        gone, what it recorded is read back from Redis.
        """
        if self._is_horse:
            return job.meta.get("attempt")
        try:
            return job.get_meta(refresh=True).get("attempt")
        except RedisError:
            # Unknown: the verdict then applies to the attempt the task row holds, as before.
            return None

    def setup_work_horse_signals(self) -> None:
        super().setup_work_horse_signals()
        # RQ puts the work horse in a process group of its own: killing the worker's group
        # leaves it running, still reporting for an attempt the watchdog has given up on.
        die_with_parent(self.pid)

    def _start_scheduler(
        self,
        burst: bool = False,
        logging_level: str | None = "INFO",
        date_format: str = DEFAULT_LOGGING_DATE_FORMAT,
        log_format: str = DEFAULT_LOGGING_FORMAT,
    ) -> None:
        # RQ's private hook, the one place that builds the worker's scheduler: here it builds
        # ours and starts it in every worker, lock or not (worker/scheduler.py says why).
        if burst:
            super()._start_scheduler(burst, logging_level, date_format, log_format)
            return
        self.scheduler = AppScheduler(
            self.queues,
            connection=self.connection,
            logging_level=logging_level if logging_level is not None else self.log.level,
            date_format=date_format,
            log_format=log_format,
            serializer=self.serializer,
        )
        self.scheduler.start()
