from __future__ import annotations

import time
from typing import Any

from flask import Flask
from redis.client import Pipeline, PubSub, PubSubWorkerThread
from redis.exceptions import RedisError
from rq import Queue, Worker, worker_registration
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.executions import Execution
from rq.job import Job
from sqlalchemy.orm import configure_mappers

from app.broker import AWAY, Keys
from app.extensions import db
from app.models import Task
from app.progress import warm_up
from app.sansio.breaker import Breaker
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

    Redis may go away for any time and come back empty: the worker keeps running, tries
    again with a capped backoff, logs once when Redis goes and once when it is back, and
    registers itself again on every heartbeat (a Redis that restarted forgot it). A job
    running meanwhile goes on; its work horse waits for Redis before RQ records the outcome.
    """

    # Trying Redis again while it is away: RQ's own dequeue loop waits up to this long too.
    RETRY_FIRST = 0.5
    RETRY_MAX = 2.0
    max_connection_wait_time = RETRY_MAX

    def __init__(self, *args: Any, app: Flask, **kwargs: Any) -> None:
        lease_ttl = app.config["WORKER_LOST_AFTER"]
        kwargs.setdefault("job_monitoring_interval", max(1, lease_ttl // 3))
        super().__init__(*args, **kwargs)
        self.app = app
        self._lease_ttl = lease_ttl
        self._keys: Keys = app.extensions["broker"].keys
        self._redis = Breaker(self.RETRY_FIRST, self.RETRY_MAX)
        self._warm_up()

    def _warm_up(self) -> None:
        # Each job runs in a fresh fork of this process, so whatever SQLAlchemy builds lazily
        # (mapper configuration, compiled statements) would be rebuilt by every job, a few
        # milliseconds each time. Built once here, every fork inherits it.
        with self.app.app_context():
            configure_mappers()
            db.session.get(Task, "")
            warm_up()

    def _redis_lost(self, exc: Exception) -> None:
        if self._redis.failed(time.monotonic()):
            self.log.warning("Worker %s: Redis unreachable (%s); still running, trying again", self.name, exc)

    def _redis_answered(self) -> None:
        outage = self._redis.succeeded(time.monotonic())
        if outage is not None:
            self.log.warning("Worker %s: Redis answers again after %.1f s", self.name, outage)

    def _await_redis(self, exc: Exception) -> None:
        """Block until Redis answers a ping, trying again with a capped backoff."""
        self._redis_lost(exc)
        while True:
            time.sleep(self._redis.delay)
            try:
                self.connection.ping()
            except AWAY:
                self._redis.failed(time.monotonic())
            else:
                return

    def _register(self, pipeline: Pipeline) -> None:
        # What RQ's register_birth writes, idempotent: Worker.all, /readyz and the health check
        # find this worker again once a Redis that restarted empty has had one heartbeat.
        pipeline.hset(self.key, mapping={**self.serialize(), "state": self.get_state()})
        worker_registration.register(self, pipeline)

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        if pipeline is not None:
            super().heartbeat(timeout, pipeline)
            return
        while True:
            try:
                with self.connection.pipeline() as pipe:
                    super().heartbeat(timeout, pipe)
                    self._register(pipe)
                    pipe.execute()
            except AWAY as exc:
                if self.horse_pid:
                    # The job goes on; the work-horse monitor keeps trying at its own pace.
                    self._redis_lost(exc)
                    return
                self._await_redis(exc)
            else:
                self._redis_answered()
                return

    def set_state(self, state: str, pipeline: Pipeline | None = None) -> None:
        try:
            super().set_state(state, pipeline)
        except AWAY as exc:
            # The next heartbeat writes it, with the rest of the registration.
            self._redis_lost(exc)

    def set_shutdown_requested_date(self) -> None:
        # Called from the SIGTERM handler while a job runs: an outage must not turn a warm
        # shutdown into an exception raised wherever the worker happened to be.
        try:
            super().set_shutdown_requested_date()
        except AWAY as exc:
            self._redis_lost(exc)

    def check_for_suspension(self, burst: bool) -> None:
        try:
            super().check_for_suspension(burst)
        except AWAY as exc:
            self._await_redis(exc)

    def run_maintenance_tasks(self) -> None:
        try:
            super().run_maintenance_tasks()
        except AWAY as exc:
            self._await_redis(exc)

    def _pubsub_exception_handler(
        self, exc: Exception, pubsub: PubSub, pubsub_thread: PubSubWorkerThread
    ) -> None:
        # RQ's handler (a private method, the one RQ hands the thread) logs every retry, every
        # 2 s of an outage; the work loop already says when Redis goes and comes back.
        if isinstance(exc, AWAY):
            time.sleep(self.RETRY_MAX)
            return
        super()._pubsub_exception_handler(exc, pubsub, pubsub_thread)

    def execute_job(self, job: Job, queue: Queue) -> None:
        lease = self._keys.lease(job.id)
        try:
            self.connection.set(lease, self.name, ex=self._lease_ttl)
        except AWAY as exc:
            self._redis_lost(exc)
        try:
            super().execute_job(job, queue)
        except AWAY as exc:
            # RQ's bookkeeping around the job (its execution record; the job's status once a
            # horse died) needs Redis. The task's own state is in the database: the job ended
            # it, or the watchdog will once the lease is missing from a Redis that answers.
            self._redis_lost(exc)
        finally:
            try:
                self.connection.delete(lease)
            except AWAY as exc:
                self._redis_lost(exc)

    def maintain_heartbeats(self, job: Job, execution: Execution) -> None:
        try:
            with self.connection.pipeline() as pipe:
                # First: the watchdog judges the worker by its lease, also when Redis is back empty.
                pipe.set(self._keys.lease(job.id), self.name, ex=self._lease_ttl)
                self._register(pipe)
                pipe.execute()
            super().maintain_heartbeats(job, execution)
        except AWAY as exc:
            self._redis_lost(exc)
        else:
            self._redis_answered()

    def handle_execution_ended(self, job: Job, queue: Queue, heartbeat_ttl: int) -> None:
        # In the work horse, after the job: RQ starts recording its outcome in Redis. The
        # task's outcome is committed already; crashing the horse now would make the parent
        # take the job for one that died, so wait for Redis instead.
        while True:
            try:
                super().handle_execution_ended(job, queue, heartbeat_ttl)
            except AWAY as exc:
                self._await_redis(exc)
            else:
                self._redis_answered()
                return

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
                wait=True,
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
