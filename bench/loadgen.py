"""``python -m bench.loadgen``: many simulated running tasks, reporting through the real job code.

Each task is what a worker's work horse holds: a Task row marked running by
``app.progress.report`` (as ``run_task`` does) and an ``app.tasks.runtime.TaskContext``
whose ``report(step, total, message)`` the task function would call. Each task runs in
its own ``contextvars.Context`` holding its own app context, hence its own database
session, as each job has in its own process; sharing one session would make every
commit flush all the other tasks' unflushed progress.

Commands (JSON lines on stdin): ``start`` N tasks for the given users, ``run`` them at a
total rate, ``finish`` them (a final stored ``succeeded`` event each).
"""

from __future__ import annotations

import contextvars
import sys
import time
import uuid
from typing import Any

import config as settings
from app import create_app
from app.extensions import broker, db
from app.models import Task
from app.progress import report
from app.sansio.status import TaskStatus
from app.tasks.runtime import TaskContext
from bench.support import serve_commands

# Never reached: every report in a run is progress, never the last step.
TOTAL = 10**9
LEASE_TTL = 600


class LoadGenerator:
    def __init__(self, pool_size: int) -> None:
        config = settings.from_env()
        # One pooled connection per simulated task, as each real job holds its own.
        config["SQLALCHEMY_ENGINE_OPTIONS"] = {"pool_size": pool_size, "max_overflow": 10}
        self.app = create_app(config)
        self.tasks: list[tuple[contextvars.Context, TaskContext]] = []
        self.step = 0

    def start(self, user_ids: list[int]) -> dict[str, Any]:
        self.tasks = []
        for user_id in user_ids:
            context = contextvars.copy_context()
            self.tasks.append((context, context.run(self._start_one, user_id)))
        return {"tasks": len(self.tasks)}

    def _start_one(self, user_id: int) -> TaskContext:
        self.app.app_context().push()
        task = Task(
            id=str(uuid.uuid4()),
            name="example_long_task",
            user_id=user_id,
            params={"steps": TOTAL, "delay": 0},
            status=TaskStatus.QUEUED,
        )
        db.session.add(task)
        db.session.commit()
        # The worker holds this lease while the job runs; without it the watchdog would fail the task.
        broker.redis.set(broker.keys.lease(task.id), "bench-loadgen", ex=LEASE_TTL)
        report(task, status=TaskStatus.RUNNING, step=0, total=0, message="Started")
        return TaskContext(task)

    def run(self, rate: float, duration: float, offset: float = 0.0) -> dict[str, Any]:
        """Report round-robin over the tasks at ``rate`` per second in total, for ``duration`` seconds.

        Paced against the schedule, not the previous call: a late report is caught up on,
        so the achieved rate says whether this process kept up. ``offset`` (a fraction of
        one interval) interleaves several generators' schedules.
        """
        tasks, n = self.tasks, len(self.tasks)
        total = int(duration * rate)
        done, lag_max = 0, 0.0
        start_wall, start = time.time(), time.perf_counter() + offset / rate
        end = start + duration
        while done < total:
            now = time.perf_counter()
            if now >= end:
                break
            due = min(int((now - start) * rate) + 1, total) if now >= start else 0
            if due > done:
                lag_max = max(lag_max, now - (start + done / rate))
            while done < due and time.perf_counter() < end:
                context, ctx = tasks[done % n]
                self.step += 1
                context.run(ctx.report, self.step, TOTAL, f"Step {self.step}")
                done += 1
            wait = start + done / rate - time.perf_counter()
            if wait > 0.0005:
                # Wake a little early: the catch-up above absorbs any oversleep.
                time.sleep(wait - 0.0002)
        elapsed = time.perf_counter() - start
        return {
            "reported": done,
            "seconds": elapsed,
            "start": start_wall,
            "end": time.time(),
            "max_lag_ms": lag_max * 1000,
        }

    def finish(self) -> dict[str, Any]:
        for context, ctx in self.tasks:
            context.run(self._finish_one, ctx)
        finished, self.tasks = len(self.tasks), []
        return {"finished": finished, "t": time.time()}

    @staticmethod
    def _finish_one(ctx: TaskContext) -> None:
        report(ctx.task, status=TaskStatus.SUCCEEDED, message="Done", result={"bench": True})
        broker.redis.delete(broker.keys.lease(ctx.task.id))
        db.session.remove()


def main() -> None:
    generator = LoadGenerator(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
    serve_commands({"start": generator.start, "run": generator.run, "finish": generator.finish})


if __name__ == "__main__":
    main()
