"""What a task function may raise to end its task in a way the user understands."""


class TaskError(Exception):
    """A failure whose message is meant for the user who started the task. Never retried."""


class RetryableTaskError(TaskError):
    """A passing failure (a server that cannot be reached): retried if the task type allows."""


class TaskCancelled(Exception):
    """Raised inside a task function when its owner cancelled it."""


class AttemptAbandoned(Exception):
    """Raised inside a task function whose attempt is no longer the task's.

    Another process moved the task on without it (its worker was declared lost and the task
    retried or failed, or it was cancelled): the run stops without a word, since whoever
    moved the task on has already told its owner.
    """


class NotPermitted(Exception):
    """The user may not start this task with these parameters; the message says why (403)."""


class OverLimit(Exception):
    """Starting this task would exceed a per-user volume limit; the message says which (429)."""
