"""What one client may send over its socket: how often, how large, how deeply nested.

A client's events cost the node far more than their bytes: a ``resume`` replays up to
``REPLAY_LIMIT`` stored events, any event costs a green thread and a request context. The
clients of this project send almost nothing: pongs (not events), and at most a ``resume``
after a gap; ``static/js/progress.js`` and ``cli/`` resume at connect and never send one.
So the limits below are far above what a real client sends and far below what hurts.
docs/protocol.md ("Limits") states them.
"""

from __future__ import annotations

import re
from typing import Any

from engineio import packet as eio_packet

from app.sansio.throttle import Throttle

# Socket.IO events a socket may send in a burst, and how fast that allowance comes back.
EVENT_BURST = 30
EVENTS_PER_SECOND = 5.0
# At most one resume replayed per this many seconds, per socket; earlier ones are refused.
RESUME_INTERVAL = 2.0
# The largest message a client may send (Engine.IO's max_http_buffer_size): also a
# long-polling POST, which may carry several. Client events are well under 1 KiB.
MAX_MESSAGE_BYTES = 64 * 1024
# How deeply a client's JSON may nest. Client events nest two deep; the JSON decoder
# recurses once per level and raises RecursionError near a thousand.
MAX_JSON_DEPTH = 16


class Malformed(ValueError):
    """A client's frame or packet does not parse: its socket is closed."""


class TokenBucket:
    """``burst`` takes at once, then ``rate`` per second."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._at = now

    def take(self, now: float) -> bool:
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


class ClientLimits:
    """One socket's allowance of events and of resumes."""

    def __init__(self, now: float) -> None:
        self.events = TokenBucket(EVENTS_PER_SECOND, EVENT_BURST, now)
        self._resumes = Throttle(RESUME_INTERVAL)

    def event(self, now: float) -> bool:
        """Whether one more event of any kind is within the allowance; False: a flood."""
        return self.events.take(now)

    def resume(self, now: float) -> bool:
        """Whether a resume may replay now."""
        return self._resumes.ready(now)


# A JSON string (escapes included), or a bracket outside of one.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def within_depth(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether JSON ``text`` nests at most ``limit`` arrays and objects deep, without parsing it.

    Brackets inside strings do not count. For text that is not JSON the answer only bounds
    what a decoder would recurse into.
    """
    if text.count("[") + text.count("{") <= limit:
        return True
    depth = 0
    for match in _TOKENS.finditer(text):
        piece = match.group()
        if piece in "[{":
            depth += 1
            if depth > limit:
                return False
        elif piece in "]}":
            depth -= 1
    return True


def engineio_packet(data: Any) -> eio_packet.Packet:
    """A client's Engine.IO frame decoded, or ``Malformed``."""
    if isinstance(data, str) and not within_depth(data):
        raise Malformed("nested too deeply")
    try:
        return eio_packet.Packet(encoded_packet=data)
    except (ValueError, IndexError, TypeError) as exc:
        raise Malformed(f"not an Engine.IO packet: {exc}") from None
