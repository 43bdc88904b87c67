"""Fan-out in one Socket.IO process: live events to the owner's connections, replays without a seam.

The owner's "room" is the registry's set of that user's connections in this process.
Everything that touches it happens under one lock, so a live event is either buffered
for a replaying connection or sent to a live one, never both and never neither.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from flask import Flask
from flask_socketio import SocketIO

from app.sansio.events import END_SESSION, Incoming
from app.sansio.packet import PreEncoded
from app.sansio.protocol import ADMIN_TASK, EXPIRED, SESSION_ENDED, TASK_PROGRESS
from app.sansio.registry import Held, Registry
from app.sansio.stall import StallWatch
from app.service import BackgroundService

NAMESPACE = "/"

log = logging.getLogger(__name__)


class Fanout:
    def __init__(self, socketio: SocketIO, max_backlog: int = 0, stalled_timeout: float = 0) -> None:
        self._socketio = socketio
        # A client that stops reading (a frozen tab, a dead link not yet noticed) keeps
        # every packet for it queued in this process until the ping timeout. Ticks are
        # superseded by the next event anyway, so a lagging socket does without them; once
        # it has read nothing for stalled_timeout, it is closed and its queue dropped: the
        # client reconnects and catches up from the database, where the stored events are.
        self._max_backlog = max_backlog
        self._stalls = StallWatch(stalled_timeout) if stalled_timeout > 0 else None
        self._registry = Registry()
        self._lock = threading.Lock()

    def deliver(self, message: Incoming) -> None:
        if message.event == END_SESSION:
            self._end_session(message.user_id, message.data())
            return
        payload = PreEncoded(message.body)
        stalled: list[Any] = []
        with self._lock:
            for sid in self._registry.route(message):
                if self._may_send(sid, message.volatile, stalled):
                    self._socketio.emit(message.event, payload, to=sid)
            admins = [
                sid for sid in self._registry.admins() if self._may_send(sid, message.volatile, stalled)
            ]
        if admins:
            self._socketio.emit(ADMIN_TASK, {**message.data(), "user_id": message.user_id}, to=admins)
        for socket in stalled:
            abort(socket, "client not reading")

    def _may_send(self, sid: str, volatile: bool, stalled: list[Any]) -> bool:
        """Whether the socket takes this packet; a socket found stalled is added to ``stalled``.

        The backlog is python-engineio's per-socket queue: packets not yet written.
        """
        if not (self._max_backlog or self._stalls):
            return True
        socket = engineio_socket(self._socketio, sid)
        if socket is None:
            return True
        backlog = socket.queue.qsize()
        if backlog <= self._max_backlog:
            if self._stalls:
                self._stalls.forget(sid)
            return True
        if self._stalls and self._stalls.stalled(sid, _head(socket.queue), time.monotonic()):
            stalled.append(socket)
            return False
        return not (volatile and self._max_backlog)

    def replay(self, sid: str, events: list[tuple[str, Any]], *, skip: frozenset[int] = frozenset()) -> int:
        """Send a replay's events to a replaying connection under the rules of live stored events;
        how many were sent. A client found stalled is closed and the rest not sent. ``skip``: the
        seqs it already holds."""
        stalled: list[Any] = []
        sent = 0
        with self._lock:
            for name, data in events:
                if name == TASK_PROGRESS and data.get("seq") in skip:
                    continue
                if not self._may_send(sid, False, stalled):
                    break
                self._socketio.emit(name, data, to=sid)
                sent += 1
        for socket in stalled:
            abort(socket, "client not reading")
        return sent

    def may_replay(self, sid: str) -> bool:
        """Whether a replay the client asked for may be queued: like a tick, not while more than
        ``max_backlog`` packets wait for it; a client found stalled is closed."""
        stalled: list[Any] = []
        with self._lock:
            ok = self._may_send(sid, True, stalled)
        for socket in stalled:
            abort(socket, "client not reading")
        return ok and not stalled

    def connected(
        self, sid: str, user_id: int, auth_id: str, *, admin: bool = False, expires_at: float | None = None
    ) -> None:
        """A new connection starts out replaying: its live events wait until ``go_live``.

        ``expires_at`` (seconds since the epoch) is when its credential expires: ``expire`` closes it then.
        """
        with self._lock:
            self._registry.add(sid, user_id, auth_id, admin=admin, expires_at=expires_at)

    def expire(self, now: float) -> None:
        """End the connections whose credential expired by ``now``."""
        with self._lock:
            sids = self._registry.expired(now)
        self._end(sids, EXPIRED)

    def begin_replay(self, sid: str) -> bool:
        """False if the connection is already replaying (a resume, or the backfill)."""
        with self._lock:
            return self._registry.begin_replay(sid)

    def go_live(self, sid: str, floor: int) -> None:
        """Send what arrived during the replay and is newer than ``floor``; live from now on."""
        with self._lock:
            for message in self._registry.end_replay(sid, floor):
                self._socketio.emit(TASK_PROGRESS, PreEncoded(message.body), to=sid)

    def holding(self) -> dict[int, int]:
        with self._lock:
            return self._registry.holding()

    def behind(self, user_id: int, seq: int) -> list[str]:
        with self._lock:
            return self._registry.behind(user_id, seq)

    def begin_backfill(self, sid: str) -> Held | None:
        with self._lock:
            return self._registry.begin_backfill(sid)

    def user_of(self, sid: str) -> int:
        with self._lock:
            return self._registry.user_of(sid)

    def disconnected(self, sid: str) -> None:
        with self._lock:
            self._registry.remove(sid)
            if self._stalls:
                self._stalls.forget(sid)

    def _end_session(self, user_id: int, data: dict[str, Any]) -> None:
        with self._lock:
            sids = self._registry.sessions(user_id, str(data.get("auth_id")))
        self._end(sids, data.get("reason"))

    def _end(self, sids: list[str], reason: Any) -> None:
        for sid in sids:
            self._socketio.emit(SESSION_ENDED, {"reason": reason}, to=sid)
            self._socketio.server.disconnect(sid, namespace=NAMESPACE)


class SocketExpiry(BackgroundService):
    """Closes each socket when the token or login it authenticated with expires."""

    INTERVAL = 1.0

    def __init__(self, app: Flask, socketio: SocketIO, fanout: Fanout) -> None:
        super().__init__(app, socketio)
        self._fanout = fanout

    def _run(self) -> None:
        while not self._stopping:
            self._socketio.sleep(self.INTERVAL)
            try:
                self._fanout.expire(time.time())
            except Exception:
                # One failed close must not end the sweep for every other socket.
                log.exception("closing expired sockets failed; trying again in %.0f s", self.INTERVAL)


def _head(queue: Any) -> object:
    # eventlet's, gevent's and the standard library's queues all keep their items in a deque.
    return queue.queue[0] if queue.queue else None


def engineio_socket(socketio: SocketIO, sid: str) -> Any:
    """The Engine.IO socket under a Socket.IO connection, or None once it is gone."""
    server = socketio.server
    return server.eio.sockets.get(server.manager.eio_sid_from_sid(sid, NAMESPACE))


def abort(socket: Any, why: str) -> None:
    """Close an Engine.IO socket now, dropping what is queued for it, and free its place.

    Engine.IO's own disconnect waits for the queue to drain, which a stalled client never
    lets happen. The disconnect handlers run now; the writer, blocked on the client, exits
    once its current write completes or fails, and closes the connection.
    """
    if socket.closed:
        return
    log.warning("closing socket %s: %s, %d packets waiting", socket.sid, why, socket.queue.qsize())
    socket.close(wait=False, abort=True)
    empty = socket.server.get_queue_empty_exception()
    while True:
        try:
            socket.queue.get(block=False)
        except empty:
            break
        socket.queue.task_done()
    socket.queue.put(None)
