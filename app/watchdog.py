"""The watchdog: ends tasks that nobody else will end. One tick every WATCHDOG_INTERVAL.

Runs as a background task in each web process; a short Redis lock lets one node act
per tick. It looks at the database for the few unfinished tasks, never per event.

- A running task whose worker stopped renewing its lease (the worker was killed or its
  machine lost) is retried per its type's policy, or ends failed.
- A queued task whose job vanished from Redis (Redis restarted empty) is enqueued again
  from the database, once. A missing lease counts only once this watchdog has seen the
  same Redis answer for a whole lease period: leases vanish with Redis too, and a live
  worker renews its own within a third of that once Redis is back.
- A running task asked to cancel that has not stopped within CANCEL_GRACE is stopped
  by RQ (its work horse is killed; the worker then records it cancelled).
- Result files past RESULT_TTL are deleted; events past NOTIFICATION_RETENTION,
  expired tokens and expired logins are forgotten.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
import uuid
from datetime import timedelta
from pathlib import Path

from flask import Flask
from flask_socketio import SocketIO
from redis.exceptions import RedisError
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy import delete, select
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from app.broker import AWAY, SERIALIZER
from app.database import unavailable
from app.extensions import broker, db
from app.models import Login, Notification, Task, Token, utcnow
from app.sansio.status import TaskStatus
from app.service import BackgroundService
from app.tasks.catalogue import CATALOGUE
from app.tasks.launcher import enqueue
from app.tasks.lifecycle import WORKER_LOST, job_ended_badly

log = logging.getLogger(__name__)

_WAITING = (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED)

# Seconds after enqueueing a task's job again during which no other watchdog tick does.
REQUEUE_GUARD = 60


class Watchdog(BackgroundService):
    def __init__(self, app: Flask, socketio: SocketIO) -> None:
        super().__init__(app, socketio)
        self._node = uuid.uuid4().hex
        # The Redis server this watchdog sees, and since when (monotonic) without a gap.
        self._redis_run_id: str | None = None
        self._redis_seen_since: float | None = None
        self._leases_trusted = False
        self._database_away = False

    def _run(self) -> None:
        interval = self._app.config["WATCHDOG_INTERVAL"]
        while not self._stopping:
            try:
                with self._app.app_context():
                    self.tick()
            except AWAY as exc:
                if self._redis_seen_since is not None:
                    log.warning("watchdog: Redis unreachable (%s); no worker is declared lost meanwhile", exc)
                self._redis_seen_since = None
                self._leases_trusted = False
            except DBAPIError as exc:
                if not unavailable(exc):
                    log.exception("watchdog tick failed; trying again in %s s", interval)
                elif not self._database_away:
                    # One line per outage, not a traceback per tick.
                    self._database_away = True
                    log.warning(
                        "watchdog: the database is unavailable (%s); trying every %s s", exc.orig, interval
                    )
            except (RedisError, SQLAlchemyError, OSError):
                log.exception("watchdog tick failed; trying again in %s s", interval)
            else:
                if self._database_away:
                    self._database_away = False
                    log.warning("watchdog: the database answers again")
            self._socketio.sleep(interval)

    def tick(self) -> None:
        self._watch_redis()
        interval_ms = int(self._app.config["WATCHDOG_INTERVAL"] * 1000)
        if not broker.redis.set(broker.keys.watchdog, self._node, nx=True, px=max(interval_ms - 100, 100)):
            return
        unfinished = list(db.session.scalars(select(Task).where(Task.status.in_(TaskStatus.unfinished()))))
        for task in unfinished:
            if task.status == TaskStatus.RUNNING:
                self._check_running(task)
            else:
                self._check_queued(task)
        self._expire_results()
        self._prune()

    def _watch_redis(self) -> None:
        """Trust missing leases once the same Redis has answered for WORKER_LOST_AFTER, without a gap.

        Its own uptime counts as well as what this watchdog saw: a server that restarted
        empty between two ticks has the same run as before in nobody's eyes but its own.
        """
        info = broker.redis.info("server")
        now = time.monotonic()
        if info["run_id"] != self._redis_run_id or self._redis_seen_since is None:
            if self._redis_run_id is not None:
                log.warning(
                    "watchdog: Redis answers (run %s); trusting leases again in a while", info["run_id"]
                )
            self._redis_run_id = info["run_id"]
            self._redis_seen_since = now
        lost_after = self._app.config["WORKER_LOST_AFTER"]
        self._leases_trusted = (
            now - self._redis_seen_since >= lost_after and int(info["uptime_in_seconds"]) >= lost_after
        )

    def _check_running(self, task: Task) -> None:
        config = self._app.config
        now = utcnow()
        # A lease is taken just before the job starts; give a young task one lease period.
        settled = task.started_at is None or now - task.started_at >= timedelta(
            seconds=config["WORKER_LOST_AFTER"]
        )
        if settled and self._leases_trusted and not broker.redis.exists(broker.keys.lease(task.id)):
            self._worker_lost(task)
            return
        grace = timedelta(seconds=config["CANCEL_GRACE"])
        if task.cancel_requested_at and now - task.cancel_requested_at > grace:
            with contextlib.suppress(NoSuchJobError, InvalidJobOperation):
                send_stop_job_command(broker.redis, task.id, serializer=SERIALIZER)

    def _worker_lost(self, task: Task) -> None:
        log.warning("task %s: its worker stopped renewing the lease", task.id)
        retry_in = None
        try:
            job = Job.fetch(task.id, connection=broker.redis, serializer=SERIALIZER)
        except NoSuchJobError:
            job = None
        if job is not None and job.get_status() == JobStatus.STARTED:
            queue = broker.queue
            with broker.redis.pipeline() as pipe:
                queue.started_job_registry.remove_executions(job, pipeline=pipe)
                if job.should_retry and task.cancel_requested_at is None:
                    retry_in = job.get_retry_interval()
                    job.retry(queue, pipe)
                else:
                    job.set_status(JobStatus.FAILED, pipeline=pipe)
                    queue.failed_job_registry.add(job, exc_string=WORKER_LOST, pipeline=pipe)
                pipe.execute()
        elif job is None and task.cancel_requested_at is None:
            # Its job vanished with a Redis that restarted since: the retry policy is the
            # type's, and the next attempt is enqueued from the database.
            intervals = CATALOGUE[task.name].retry_intervals
            if task.attempt <= len(intervals) and task.attempt < task.max_attempts:
                retry_in = intervals[task.attempt - 1]
        # A task its owner was cancelling ends cancelled, whatever took its worker down.
        stopped = task.cancel_requested_at is not None
        job_ended_badly(
            task.id,
            stopped=stopped,
            retry_in=None if stopped else retry_in,
            error=WORKER_LOST,
            traceback=None,
        )
        if job is None and retry_in is not None and task.status == TaskStatus.QUEUED:
            self._requeue(task, delay=retry_in)

    def _check_queued(self, task: Task) -> None:
        # A task row commits a moment before its job is enqueued, and a retry is recorded a
        # moment before RQ schedules it: leave young ones alone.
        last_event = task.reported_at or task.created_at.timestamp()
        if time.time() - last_event < self._app.config["WORKER_LOST_AFTER"]:
            return
        try:
            status = Job.fetch(task.id, connection=broker.redis, serializer=SERIALIZER).get_status()
        except NoSuchJobError:
            status = None
        # A job that is not waiting to run never will: it vanished with Redis, or Redis went
        # away while the worker was recording the retry (the job stays as it was, started).
        if status not in _WAITING:
            self._requeue(task)

    def _requeue(self, task: Task, delay: int = 0) -> None:
        """Enqueue a task's job again from its row; once per attempt, even if two ticks overlap."""
        guard = broker.keys.requeued(task.id, task.attempt)
        if broker.redis.set(guard, self._node, nx=True, ex=REQUEUE_GUARD):
            enqueue(task, delay=delay)
            log.warning("task %s: its job vanished from Redis; enqueued again from the database", task.id)

    def _prune(self) -> None:
        """Forget events past the retention window, and tokens and logins past their expiry."""
        cutoff = utcnow() - timedelta(seconds=self._app.config["NOTIFICATION_RETENTION"])
        db.session.execute(delete(Notification).where(Notification.created_at < cutoff))
        db.session.execute(delete(Token).where(Token.expires_at < utcnow()))
        # An ended login is kept until it would have expired: the loader refuses it either way.
        db.session.execute(delete(Login).where(Login.expires_at < utcnow()))
        db.session.commit()

    def _expire_results(self) -> None:
        results_dir = Path(self._app.config["RESULTS_DIR"])
        expired = db.session.scalars(
            select(Task).where(Task.result_file.is_not(None), Task.result_expires_at < utcnow())
        )
        gone = []
        for task in expired:
            task.result_file = None
            gone.append(task.id)
        # The rows stop offering the files before the files go, never the other way round.
        db.session.commit()
        for task_id in gone:
            shutil.rmtree(results_dir / task_id, ignore_errors=True)
