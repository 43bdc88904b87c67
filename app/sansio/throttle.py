"""Coalescing a flood of progress reports: at most one every ``interval`` seconds.

A task may report a million times; users see no difference past ~20 updates a second,
while every report costs a commit and a publish. Status changes never pass through here.
"""

from __future__ import annotations


class Throttle:
    def __init__(self, interval: float, *, since: float | None = None) -> None:
        self.interval = interval
        self._last = since

    @property
    def due(self) -> float:
        """The earliest time ``ready`` can next answer True."""
        return float("-inf") if self._last is None else self._last + self.interval

    def ready(self, now: float, *, final: bool = False) -> bool:
        if final or self._last is None or now - self._last >= self.interval:
            self._last = now
            return True
        return False
