"""Every task a user can start, with its parameters and limits, declared in one place."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.sansio.params import Param
from app.tasks import demo


@dataclass(frozen=True, slots=True)
class TaskType:
    name: str
    title: str
    description: str
    func: Callable[..., Any]
    params: tuple[Param, ...]
    # Seconds the job may run before it is stopped and ends "timed out".
    timeout: int
    # Seconds to wait before each retry after a failure; empty means no retry.
    retry_intervals: tuple[int, ...] = ()
    # How many tasks of this type one user may have queued or running at once.
    concurrent_per_user: int = 1

    @property
    def max_attempts(self) -> int:
        return len(self.retry_intervals) + 1

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "params": [p.describe() for p in self.params],
            "timeout": self.timeout,
            "max_attempts": self.max_attempts,
            "concurrent_per_user": self.concurrent_per_user,
        }


CATALOGUE: dict[str, TaskType] = {
    t.name: t
    for t in (
        TaskType(
            name="example_long_task",
            title="Demo: count steps",
            description="Counts steps with a pause between each, reporting every one.",
            func=demo.example_long_task,
            params=(
                Param("steps", int, default=10, minimum=1, maximum=100, help="How many steps"),
                Param("delay", float, default=1.0, minimum=0.0, maximum=5.0, help="Seconds per step"),
            ),
            timeout=15 * 60,
            concurrent_per_user=3,
        ),
    )
}
