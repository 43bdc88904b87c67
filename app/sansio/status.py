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
