"""Rate and time-to-finish for a running task, from what it has reported so far."""

from __future__ import annotations


def rate_and_eta(
    step: int, total: int, started: float | None, now: float
) -> tuple[float | None, float | None]:
    """Steps per second and seconds left, or ``None`` where they cannot be estimated yet."""
    if started is None or step <= 0 or now <= started:
        return None, None
    rate = step / (now - started)
    if total <= 0 or step >= total:
        return rate, None if total <= 0 else 0.0
    return rate, (total - step) / rate
