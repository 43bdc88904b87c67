"""Exit codes (README, "Command-line client") and the error that carries one to ``main``."""

from __future__ import annotations

OK = 0
TASK_FAILED = 1
USAGE = 2
TASK_CANCELLED = 3
UNAVAILABLE = 4
INTERRUPTED = 130

FINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
_STATUS_EXIT = {"succeeded": OK, "failed": TASK_FAILED, "cancelled": TASK_CANCELLED}


class CliError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def exit_code_for(status: str) -> int:
    """The exit code of a command that waited for a task to end with ``status``."""
    return _STATUS_EXIT[status]
