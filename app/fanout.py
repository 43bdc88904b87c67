"""Fan-out in one Socket.IO process: live events to the owner's connections, replays without a seam.

The owner's "room" is the registry's set of that user's connections in this process.
Everything that touches it happens under one lock, so a live event is either buffered
for a replaying connection or sent to a live one, never both and never neither.
"""

from __future__ import annotations

import threading
from typing import Any

from flask_socketio import SocketIO

from app.sansio.events import END_SESSION, Incoming
from app.sansio.packet import PreEncoded
from app.sansio.protocol import ADMIN_TASK, SESSION_ENDED, TASK_PROGRESS
from app.sansio.registry import Registry

NAMESPACE = "/"


class Fanout:
    def __init__(self, socketio: SocketIO, max_backlog: int = 0) -> None:
        self._socketio = socketio
        # A client that stops reading (a frozen tab, a dead link not yet noticed) keeps
        # every packet for it queued in this process until the ping timeout. Ticks are
        # superseded by the next event anyway, so a lagging socket does without them.
        self._max_backlog = max_backlog
        self._registry = Registry()
        self._lock = threading.Lock()

    def deliver(self, message: Incoming) -> None:
        if message.event == END_SESSION:
            self._end_session(message.user_id, message.data())
            return
        payload = PreEncoded(message.body)
        skip_lagging = message.volatile and self._max_backlog > 0
        with self._lock:
            for sid in self._registry.route(message):
                if not (skip_lagging and self._lagging(sid)):
                    self._socketio.emit(message.event, payload, to=sid)
            admins = [sid for sid in self._registry.admins() if not (skip_lagging and self._lagging(sid))]
        if admins:
            self._socketio.emit(ADMIN_TASK, {**message.data(), "user_id": message.user_id}, to=admins)

    def _lagging(self, sid: str) -> bool:
        """More than max_backlog packets queued for the socket, not yet written (python-engineio's queue)."""
        server = self._socketio.server
        socket = server.eio.sockets.get(server.manager.eio_sid_from_sid(sid, NAMESPACE))
        return socket is not None and socket.queue.qsize() > self._max_backlog

    def connected(self, sid: str, user_id: int, auth_id: str, *, admin: bool = False) -> None:
        """A new connection starts out replaying: its live events wait until ``go_live``."""
        with self._lock:
            self._registry.add(sid, user_id, auth_id, admin=admin)

    def begin_replay(self, sid: str) -> None:
        with self._lock:
            self._registry.begin_replay(sid)

    def go_live(self, sid: str, floor: int) -> None:
        """Send what arrived during the replay and is newer than ``floor``; live from now on."""
        with self._lock:
            for message in self._registry.end_replay(sid, floor):
                self._socketio.emit(TASK_PROGRESS, PreEncoded(message.body), to=sid)

    def user_of(self, sid: str) -> int:
        with self._lock:
            return self._registry.user_of(sid)

    def disconnected(self, sid: str) -> None:
        with self._lock:
            self._registry.remove(sid)

    def _end_session(self, user_id: int, data: dict[str, Any]) -> None:
        with self._lock:
            sids = self._registry.sessions(user_id, str(data.get("auth_id")))
        for sid in sids:
            self._socketio.emit(SESSION_ENDED, {"reason": data.get("reason")}, to=sid)
            self._socketio.server.disconnect(sid, namespace=NAMESPACE)
