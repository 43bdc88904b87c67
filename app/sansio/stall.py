"""Telling a client that stopped reading from one that reads slowly, by its socket's queue.

A socket's packets wait in a queue that its writer empties whenever the client takes what
was written before. A client reading slowly still moves the head of that queue; a stalled
one (a frozen tab, a dead link not yet noticed) leaves the same packet at the head.
"""

from __future__ import annotations


class StallWatch:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        # sid -> (the packet at the head of its queue when first seen there, when that was)
        self._heads: dict[str, tuple[object, float]] = {}

    def stalled(self, sid: str, head: object, now: float) -> bool:
        """Whether ``head`` has been at the head of the socket's queue for ``timeout`` seconds."""
        seen = self._heads.get(sid)
        if seen is None or seen[0] is not head:
            self._heads[sid] = (head, now)
            return False
        return now - seen[1] >= self.timeout

    def forget(self, sid: str) -> None:
        """The socket's queue is short again, or the socket is gone."""
        self._heads.pop(sid, None)
