"""``python -m bench.reportcost``: a job that calls ``ctx.report`` in a tight loop, timed in-process.

Runs where a job runs: inside the app context, on a running Task row with a real
``TaskContext``. The same loop is timed without the report calls; stored events are
counted as the notification rows the loop added and as database commits (an engine
event), publishes by the orchestrator's subscriber on the channel.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import event, func, select

import config as settings
from app import create_app
from app.extensions import db
from app.models import Notification, Task
from app.progress import report
from app.sansio.status import TaskStatus
from app.tasks.runtime import TaskContext
from bench.support import serve_commands

BLOCK = b"x" * 1024
# Blocks of items timed alternately without and with reports (see ReportCost.measure).
BLOCKS = 20


def work_function(micros: float) -> Callable[[], None]:
    """A fixed amount of CPU work per item: nothing at all, or about ``micros`` µs of hashing."""
    if micros <= 0:
        return lambda: None
    t = time.perf_counter()
    for _ in range(2000):
        hashlib.sha256(BLOCK).digest()
    per_hash = (time.perf_counter() - t) / 2000
    rounds = max(1, round(micros * 1e-6 / per_hash))

    def work() -> None:
        for _ in range(rounds):
            hashlib.sha256(BLOCK).digest()

    return work


class ReportCost:
    def __init__(self) -> None:
        self.app = create_app(settings.from_env())
        self.app.app_context().push()
        self.commits = 0
        event.listen(db.engine, "commit", self._committed)

    def _committed(self, _connection: Any) -> None:
        self.commits += 1

    def measure(self, user_id: int, reports: int, work_us: float) -> dict[str, Any]:
        work = work_function(work_us)
        task = Task(
            id=str(uuid.uuid4()),
            name="example_long_task",
            user_id=user_id,
            params={},
            status=TaskStatus.QUEUED,
        )
        db.session.add(task)
        db.session.commit()
        report(task, status=TaskStatus.RUNNING, step=0, total=0, message="Started")
        ctx = TaskContext(task)
        rows_before, self.commits = self._rows(user_id), 0
        # The same job, its items alternately without and with a report each, in blocks: the
        # two timings share whatever the machine does meanwhile (frequency, other processes),
        # which dwarfs the difference when they are taken one after the other.
        per_block = reports // BLOCKS
        without = with_reports = 0.0
        step = 0
        start_wall = time.time()
        for _ in range(BLOCKS):
            t = time.perf_counter()
            for _ in range(per_block):
                work()
            without += time.perf_counter() - t
            t = time.perf_counter()
            for _ in range(per_block):
                step += 1
                work()
                ctx.report(step, reports, "Step")
            with_reports += time.perf_counter() - t
        end_wall = time.time()
        commits, rows = self.commits, self._rows(user_id) - rows_before
        report(task, status=TaskStatus.SUCCEEDED, message="Done")
        return {
            "task_id": task.id,
            "reports": reports,
            "work_us": work_us,
            "seconds_without": without,
            "seconds_with": with_reports,
            "notifications_added": rows,
            "commits": commits,
            "start": start_wall,
            "end": end_wall,
        }

    @staticmethod
    def _rows(user_id: int) -> int:
        count = db.session.scalar(
            select(func.count()).select_from(Notification).where(Notification.user_id == user_id)
        )
        db.session.commit()
        return count or 0


def main() -> None:
    cost = ReportCost()
    serve_commands({"measure": cost.measure})


if __name__ == "__main__":
    main()
