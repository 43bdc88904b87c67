"""Job functions that only the benchmark enqueues (importable by ``python -m worker``)."""


def noop() -> None:
    """The bare-RQ baseline: a job that does nothing, so only the queue and the worker cost time."""
