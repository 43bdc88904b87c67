"""The declaration of a task type: its function, parameters and limits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.sansio.params import Param

if TYPE_CHECKING:
    from app.models import User


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
    # Whether this user may start it with these (validated) parameters: raises ``NotPermitted``
    # or ``OverLimit``. Called inside the start's transaction, after the user's row is locked.
    admit: Callable[[User, dict[str, Any]], None] | None = None

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
