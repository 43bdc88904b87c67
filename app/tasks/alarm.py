"""A flag that rises when a deadline passes, so a tight loop can test an attribute instead of reading the clock.

One watcher thread per process serves every alarm: a process that runs many tasks
(the benchmark's load generator) must not pay a thread switch per task.
"""

from __future__ import annotations

import heapq
import itertools
import os
import threading
import time

_NEVER = float("inf")
# Deadlines this close together ring in one wake-up of the watcher.
_SLACK = 0.002


class Alarm:
    """``rang`` turns True once the deadline set last has passed.

    It may turn True early, and late by a few milliseconds: callers that act on it check
    the clock themselves.
    """

    __slots__ = ("_deadline", "rang")

    def __init__(self) -> None:
        self.rang = True
        self._deadline = _NEVER

    def set(self, deadline: float, now: float) -> None:
        """Lower the flag until ``deadline``, unless it has passed already (``time.monotonic()`` times)."""
        if deadline <= now:
            self.rang = True
            return
        self.rang = False
        self._deadline = deadline
        _watcher.add(deadline, self)


class _Watcher:
    def __init__(self) -> None:
        self._reset()
        # A thread does not survive fork: a work horse starts its own.
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Alarm]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, deadline: float, alarm: Alarm) -> None:
        with self._cond:
            heapq.heappush(self._heap, (deadline, next(self._order), alarm))
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="progress-alarms", daemon=True)
                self._thread.start()
            elif self._heap[0][2] is alarm:
                self._cond.notify()

    def _watch(self) -> None:
        cond, heap = self._cond, self._heap
        with cond:
            while True:
                if not heap:
                    cond.wait()
                    continue
                now = time.monotonic()
                if heap[0][0] > now:
                    cond.wait(heap[0][0] - now + _SLACK)
                    continue
                while heap and heap[0][0] <= now:
                    deadline, _, alarm = heapq.heappop(heap)
                    # An alarm set again for later has a newer entry; this one is stale.
                    if alarm._deadline <= deadline:
                        alarm.rang = True


_watcher = _Watcher()
