"""Who is connected to this process: each user's room, and who is still catching up.

A connection starts in replay mode: live events for its user are buffered for it while
the server replays from the database. When the replay ends, the buffer is drained of
everything the replay already covered (``seq <= floor``) and the rest is sent in order.
From then on live events go straight to it, except those the replay covered: an event
committed before the replay read it may be published (and arrive here) after the replay
ended. That is how the seam between replay and live has neither a gap nor a duplicate.

Each connection also knows which stored events it holds (``upto``, and the few that came
out of order above it). A publish this node never heard (its subscription was down, or the
publisher could not reach Redis) leaves a gap there; the backfill (app/backfill.py) finds
connections behind their user's latest seq and replays the gap the same way.

A connection may also have an expiry, its credential's (a token's or a login's): ``expired``
hands out those past it, for the node to close.
"""

from __future__ import annotations

import heapq
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
    # Every stored event up to this seq has been sent, and those in ``ahead`` above it.
    upto: int = 0
    ahead: set[int] | None = None
    # When its credential expires (seconds since the epoch); None: never.
    expires_at: float | None = None

    def hold(self, seq: int) -> None:
        if seq == self.upto + 1:
            self.upto = seq
            ahead = self.ahead
            while ahead and self.upto + 1 in ahead:
                self.upto += 1
                ahead.discard(self.upto)
        elif seq > self.upto:
            if self.ahead is None:
                self.ahead = set()
            self.ahead.add(seq)


@dataclass(frozen=True)
class Held:
    """What a live connection holds when a backfill begins."""

    upto: int
    ahead: frozenset[int]
    floor: int


class Registry:
    def __init__(self) -> None:
        self._connections: dict[str, Connection] = {}
        self._by_user: dict[int, set[str]] = defaultdict(set)
        self._admins: set[str] = set()
        # (expires_at, sid), soonest first; entries of closed connections are skipped when
        # popped, and dropped in a rebuild once they outnumber the open ones.
        self._expiries: list[tuple[float, str]] = []

    def add(
        self, sid: str, user_id: int, auth_id: str, *, admin: bool = False, expires_at: float | None = None
    ) -> None:
        self._connections[sid] = Connection(user_id, auth_id, admin=admin, expires_at=expires_at)
        self._by_user[user_id].add(sid)
        if admin:
            self._admins.add(sid)
        if expires_at is not None:
            heapq.heappush(self._expiries, (expires_at, sid))
            if len(self._expiries) > 2 * len(self._connections) + 64:
                self._expiries = [
                    (c.expires_at, s) for s, c in self._connections.items() if c.expires_at is not None
                ]
                heapq.heapify(self._expiries)

    def expired(self, now: float) -> list[str]:
        """The open connections whose credential expired at or before ``now``; each is handed out once."""
        found = []
        while self._expiries and self._expiries[0][0] <= now:
            expires_at, sid = heapq.heappop(self._expiries)
            connection = self._connections.get(sid)
            if connection is not None and connection.expires_at == expires_at:
                found.append(sid)
        return found

    def remove(self, sid: str) -> None:
        connection = self._connections.pop(sid, None)
        self._admins.discard(sid)
        if connection is not None:
            sids = self._by_user[connection.user_id]
            sids.discard(sid)
            if not sids:
                del self._by_user[connection.user_id]

    def begin_replay(self, sid: str) -> bool:
        """Start a resume's replay; False if the connection is gone or replaying already (its
        connect's, an earlier resume's, or a backfill's): two replays at once would each send
        the events of the other."""
        connection = self._connections.get(sid)
        if connection is None or connection.buffer is not None:
            return False
        connection.buffer = []
        return True

    def route(self, message: Incoming) -> list[str]:
        """The user's live connections that need this event now; replaying ones keep it for later."""
        ready = []
        for sid in self._by_user.get(message.user_id, ()):
            connection = self._connections[sid]
            if connection.buffer is not None:
                connection.buffer.append(message)
            elif message.volatile:
                # A volatile tick is never replayed, so it cannot be a duplicate of the replay.
                ready.append(sid)
            elif (seq := message.seq or 0) > connection.floor:
                ready.append(sid)
                connection.hold(seq)
        return ready

    def end_replay(self, sid: str, floor: int) -> list[Incoming]:
        """The buffered events the replay did not cover, in seq order; the connection goes live."""
        connection = self._connections.get(sid)
        if connection is None:
            return []
        pending, connection.buffer, connection.floor = connection.buffer or [], None, floor
        # The replay covered every stored event up to the floor, or a snapshot superseded them.
        if floor > connection.upto:
            connection.upto = floor
        if connection.ahead:
            above = sorted(s for s in connection.ahead if s > connection.upto)
            connection.ahead = None
            for seq in above:
                connection.hold(seq)
        stored = {m.seq: m for m in pending if not m.volatile and (m.seq or 0) > floor}
        for seq in sorted(stored):
            connection.hold(seq)
        ticks = [m for m in pending if m.volatile]
        # Each tick goes right after the stored event it follows (its seq); sorted() is stable.
        return sorted([*stored.values(), *ticks], key=lambda m: (m.seq or 0, m.volatile))

    def holding(self) -> dict[int, int]:
        """Each user with live connections here, and the lowest ``upto`` among them."""
        lowest: dict[int, int] = {}
        for connection in self._connections.values():
            if connection.buffer is None:
                user = connection.user_id
                lowest[user] = min(connection.upto, lowest.get(user, connection.upto))
        return lowest

    def behind(self, user_id: int, seq: int) -> list[str]:
        """The user's live connections that do not hold every stored event up to ``seq``."""
        return sorted(
            sid
            for sid in self._by_user.get(user_id, ())
            if self._connections[sid].buffer is None and self._connections[sid].upto < seq
        )

    def begin_backfill(self, sid: str) -> Held | None:
        """Start replaying to a live connection: what it holds, or None if it is gone or replaying."""
        connection = self._connections.get(sid)
        if connection is None or connection.buffer is not None:
            return None
        connection.buffer = []
        return Held(connection.upto, frozenset(connection.ahead or ()), connection.floor)

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
