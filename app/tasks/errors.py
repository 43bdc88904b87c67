"""What a task function may raise to end its task in a way the user understands."""


class TaskError(Exception):
    """A failure whose message is meant for the user who started the task. Never retried."""


class RetryableTaskError(TaskError):
    """A passing failure (a server that cannot be reached): retried if the task type allows."""


class TaskCancelled(Exception):
    """Raised inside a task function when its owner cancelled it."""
