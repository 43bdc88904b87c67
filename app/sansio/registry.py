"""Who is connected to this process: each user's room, and who is still catching up.

A connection starts in replay mode: live events for its user are buffered for it while
the server replays from the database. When the replay ends, the buffer is drained of
everything the replay already covered (``seq <= floor``) and the rest is sent in order.
From then on live events go straight to it, except those the replay covered: an event
committed before the replay read it may be published (and arrive here) after the replay
ended. That is how the seam between replay and live has neither a gap nor a duplicate.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from app.sansio.events import Incoming


@dataclass
class Connection:
    user_id: int
    # The token hash or login-session id this connection authenticated with, so that
    # revoking one token or ending one session disconnects exactly its sockets.
    auth_id: str
    buffer: list[Incoming] | None = field(default_factory=list)
    floor: int = 0
    # Operators' connections also see every user's tasks (as ``admin_task``, no replay).
    admin: bool = False


class Registry:
    def __init__(self) -> None:
        self._connections: dict[str, Connection] = {}
        self._by_user: dict[int, set[str]] = defaultdict(set)
        self._admins: set[str] = set()

    def add(self, sid: str, user_id: int, auth_id: str, *, admin: bool = False) -> None:
        self._connections[sid] = Connection(user_id, auth_id, admin=admin)
        self._by_user[user_id].add(sid)
        if admin:
            self._admins.add(sid)

    def remove(self, sid: str) -> None:
        connection = self._connections.pop(sid, None)
        self._admins.discard(sid)
        if connection is not None:
            sids = self._by_user[connection.user_id]
            sids.discard(sid)
            if not sids:
                del self._by_user[connection.user_id]

    def begin_replay(self, sid: str) -> None:
        self._connections[sid].buffer = []

    def route(self, message: Incoming) -> list[str]:
        """The user's live connections that need this event now; replaying ones keep it for later."""
        ready = []
        for sid in self._by_user.get(message.user_id, ()):
            connection = self._connections[sid]
            if connection.buffer is not None:
                connection.buffer.append(message)
            elif message.volatile or (message.seq or 0) > connection.floor:
                # A volatile tick is never replayed, so it cannot be a duplicate of the replay.
                ready.append(sid)
        return ready

    def end_replay(self, sid: str, floor: int) -> list[Incoming]:
        """The buffered events the replay did not cover, in seq order; the connection goes live."""
        connection = self._connections[sid]
        pending, connection.buffer, connection.floor = connection.buffer or [], None, floor
        stored = {m.seq: m for m in pending if not m.volatile and (m.seq or 0) > floor}
        ticks = [m for m in pending if m.volatile]
        # Each tick goes right after the stored event it follows (its seq); sorted() is stable.
        return sorted([*stored.values(), *ticks], key=lambda m: (m.seq or 0, m.volatile))

    def admins(self) -> list[str]:
        return sorted(self._admins)

    def user_of(self, sid: str) -> int:
        return self._connections[sid].user_id

    def sessions(self, user_id: int, auth_id: str) -> list[str]:
        return sorted(
            sid for sid in self._by_user.get(user_id, ()) if self._connections[sid].auth_id == auth_id
        )

    def __len__(self) -> int:
        return len(self._connections)
