"""RQ's scheduler, made to move retries on time whichever worker runs it or dies running it.

RQ lets one scheduler per queue move due scheduled jobs (retries with an interval) onto the
queue, by holding a lock in Redis for 61 s, and starts a scheduler process only in the worker
that won the lock at start-up; the others try to take it once per maintenance interval (10
minutes), so a worker killed while holding the lock would hold every retry back that long.
Here every worker runs a scheduler process: the one holding the lock renews it every second
for LOCK_TTL seconds only, the others stand by and try to take it every second. A dead
holder's lock is free within LOCK_TTL, and a standby takes over the next second.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from redis.exceptions import RedisError
from rq.scheduler import RQScheduler
from rq.scripts import acquire_or_refresh_lock

from worker.parent_death import die_with_parent

log = logging.getLogger(__name__)

# Seconds a scheduler that stopped renewing its lock (it renews every second) keeps others
# out. Long enough that a busy machine's pause does not hand the lock over needlessly; a
# holder that pauses anyway finds out at its next renewal, before it moves any job.
LOCK_TTL = 5


class AppScheduler(RQScheduler):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._parent_pid = os.getpid()

    @property
    def should_reacquire_locks(self) -> bool:
        # A standby tries every round, not once per RQ's fallback period.
        return self._queue_names != self.acquired_locks

    def acquire_locks(self, auto_start: bool = False) -> set[str]:
        locks = super().acquire_locks()
        self._shorten_locks()
        # Started whether or not the lock was free: a scheduler without it stands by.
        if auto_start and (not self._process or not self._process.is_alive()):
            self.start()
        return locks

    def heartbeat(self) -> None:
        super().heartbeat()
        self._shorten_locks()

    def _shorten_locks(self) -> None:
        # RQ has just set each lock it holds to its own TTL; the same atomic owner-checked
        # refresh sets it to ours.
        for name in self.acquired_locks:
            acquire_or_refresh_lock(self.connection, self.get_locking_key(name), self.name, LOCK_TTL)

    def start(self) -> Any:
        self._parent_pid = os.getpid()
        return super().start()

    def work(self) -> None:
        """RQ's scheduler loop, in the worker's child process, surviving Redis going away."""
        die_with_parent(self._parent_pid)
        self._install_signal_handlers()
        registered = False
        reachable = True
        while not self._stop_requested:
            try:
                if not registered:
                    self.register_birth()
                    registered = True
                if self.should_reacquire_locks:
                    self.acquire_locks()
                self.heartbeat()
                self.enqueue_scheduled_jobs()
            except RedisError as exc:
                if reachable:
                    log.warning(
                        "scheduler: Redis does not answer (%s); trying again every %s s", exc, self.interval
                    )
                reachable = False
                # Whatever it held has expired or will have before Redis answers again.
                self._acquired_locks = set()
                self._scheduled_job_registries = []
            else:
                if not reachable:
                    log.info("scheduler: Redis answers again")
                reachable = True
            time.sleep(self.interval)
        try:
            self.stop()
        except RedisError:
            log.warning("scheduler: stopped without releasing its lock (Redis does not answer)")
