"""A circuit breaker's state: when to try a service that stopped answering, and when it is back.

While the service answers, every call goes through. After a failure, one trial call per
delay does, the delay doubling from ``first`` up to ``cap`` while the failures go on; the
first call that works closes the breaker again. The caller does the I/O and the logging:
``failed`` and ``succeeded`` say when the state changed, so that an outage is one line
when it starts and one when it ends, however many calls fail in between.
"""

from __future__ import annotations


class Breaker:
    def __init__(self, first: float, cap: float) -> None:
        self._first = first
        self._cap = cap
        self._delay = first
        self._retry_at = float("-inf")
        self.down_since: float | None = None

    @property
    def delay(self) -> float:
        """How long after the last failure the next trial call is due."""
        return self._delay

    def allows(self, now: float) -> bool:
        return self.down_since is None or now >= self._retry_at

    def failed(self, now: float) -> bool:
        """Record a failed call; ``True`` when it is the first of an outage."""
        first = self.down_since is None
        if first:
            self.down_since = now
            self._delay = self._first
        else:
            self._delay = min(self._delay * 2, self._cap)
        self._retry_at = now + self._delay
        return first

    def succeeded(self, now: float) -> float | None:
        """Record a call that worked; the outage's length in seconds when this call ended one."""
        if self.down_since is None:
            return None
        outage, self.down_since = now - self.down_since, None
        return outage
