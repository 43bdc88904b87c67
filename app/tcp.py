"""What the server of each async mode does to the connections it accepts: turn Nagle's algorithm off.

Nagle's algorithm holds a small write back until the previous one is acknowledged, and
clients delay their acknowledgements by up to 40 ms: a push server writes small packets back
to back (the handshake's response and Engine.IO's open packet, two events), so each of those
waited. Every connection sends at once instead (``TCP_NODELAY``), as asyncio's and Go's
servers do.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any


def send_without_delay(conn: Any) -> None:
    if conn.family in (socket.AF_INET, socket.AF_INET6):
        # A client may have gone already: its first read or write will say so.
        with contextlib.suppress(OSError):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
