from enum import StrEnum


class TaskStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @classmethod
    def unfinished(cls) -> tuple["TaskStatus", ...]:
        return (cls.QUEUED, cls.RUNNING)

    @property
    def finished(self) -> bool:
        return self not in self.unfinished()


# The transitions a task may make; anything else is a bug or a race lost to another process.
TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.QUEUED: frozenset(
        {TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.CANCELLED, TaskStatus.FAILED}
    ),
    TaskStatus.RUNNING: frozenset(
        {TaskStatus.RUNNING, TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.QUEUED}
    ),
    TaskStatus.SUCCEEDED: frozenset(),
    # Only an operator's explicit retry (app/admin) sends a failed task back to the queue.
    TaskStatus.FAILED: frozenset({TaskStatus.QUEUED}),
    TaskStatus.CANCELLED: frozenset(),
}


def can_transition(current: str, new: str) -> bool:
    return TaskStatus(new) in TRANSITIONS[TaskStatus(current)]
