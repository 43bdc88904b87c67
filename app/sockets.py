"""Socket.IO handlers, kept thin: authenticate, catch the client up, hand it to the fan-out."""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any
from weakref import WeakKeyDictionary

from flask import Flask, current_app, request
from flask_login import current_user
from flask_socketio import ConnectionRefusedError, SocketIO, emit

from app.extensions import db, socketio
from app.fanout import abort, engineio_socket
from app.models import Token, User
from app.replay import catch_up
from app.sansio.guard import RESUME_INTERVAL, ClientLimits, Malformed
from app.sansio.protocol import (
    CLOSING,
    PROTOCOL_ERROR,
    PROTOCOL_VERSION,
    RESUME,
    TOO_MANY_EVENTS,
    WELCOME,
    parse_last_seq,
)

log = logging.getLogger(__name__)

AUTH_REQUIRED = "authentication required"
TOO_MANY_RESUMES = "too many resumes"


def register_socket_handlers(app: Flask) -> None:
    app.extensions["socket_guard"] = ClientGuard(socketio)
    socketio.on_event("connect", on_connect)
    socketio.on_event("disconnect", on_disconnect)
    socketio.on_event(RESUME, on_resume)


def authenticate(auth: Any) -> tuple[User, str, datetime] | None:
    """A browser brings its login session; any other client brings ``auth={"token": ...}``.

    Returns the user, what identifies this credential (so ending it can find its sockets),
    and when it expires (the socket is closed then).
    """
    if current_user.is_authenticated:
        login = current_user.login
        return current_user._get_current_object(), login.key_hash, login.expires_at
    if isinstance(auth, dict) and isinstance(auth.get("token"), str):
        token = Token.find(auth["token"])
        if token is not None:
            return token.user, token.token_hash, token.expires_at
    return None


def on_connect(auth: Any = None) -> None:
    found = authenticate(auth)
    if found is None:
        raise ConnectionRefusedError(AUTH_REQUIRED)
    try:
        last_seq = parse_last_seq(auth.get("last_seq") if isinstance(auth, dict) else None)
    except ValueError as exc:
        raise ConnectionRefusedError(str(exc)) from None
    if last_seq is not None and not current_app.extensions["socket_guard"].may_resume(request.sid):
        raise ConnectionRefusedError(TOO_MANY_RESUMES)
    if not current_app.extensions["progress_subscriber"].ensure_started():
        raise ConnectionRefusedError("progress channel unavailable")
    user, auth_id, expires_at = found
    _fanout().connected(request.sid, user.id, auth_id, admin=user.is_admin, expires_at=expires_at.timestamp())
    _sync(user, last_seq, welcome=True)


def on_resume(data: Any = None) -> None:
    try:
        last_seq = parse_last_seq(data.get("last_seq") if isinstance(data, dict) else None)
        if last_seq is None:
            raise ValueError("invalid last_seq")
    except ValueError as exc:
        emit(PROTOCOL_ERROR, {"event": RESUME, "error": str(exc)})
        return
    sid = request.sid
    refused = None
    if not current_app.extensions["socket_guard"].may_resume(sid):
        refused = f"too many resumes: at most one every {RESUME_INTERVAL:g} s"
    elif not _fanout().may_replay(sid):
        # What is queued for it has not been read: a replay would only pile up more.
        refused = "events are waiting to be read"
    elif not _fanout().begin_replay(sid):
        refused = "a replay is in progress"
    if refused:
        emit(PROTOCOL_ERROR, {"event": RESUME, "error": refused})
        return
    _sync(db.session.get(User, _fanout().user_of(sid)), last_seq, welcome=False)


def on_disconnect(reason: Any = None) -> None:
    _fanout().disconnected(request.sid)


def _sync(user: User, last_seq: int | None, *, welcome: bool) -> None:
    result = catch_up(user, last_seq, current_app.config["REPLAY_LIMIT"])
    if welcome:
        emit(
            WELCOME,
            {
                "protocol": PROTOCOL_VERSION,
                "user_id": user.id,
                "username": user.username,
                "last_seq": result.floor,
            },
        )
    _fanout().replay(request.sid, result.events)
    _fanout().go_live(request.sid, result.floor)


def _fanout():
    return current_app.extensions["fanout"]


class ClientGuard:
    """Sees every Socket.IO packet a client sends before it is handled (it takes Engine.IO's
    ``message`` handler over): a packet that does not parse closes the socket at once, and so
    does a flood, after a ``closing`` event that says why."""

    def __init__(self, socketio: SocketIO) -> None:
        self._socketio = socketio
        eio = socketio.server.eio
        self._handle = eio.handlers["message"]
        # Keyed by the Engine.IO socket, so its allowance goes with it.
        self._limits: WeakKeyDictionary[Any, ClientLimits] = WeakKeyDictionary()
        eio.on("message", self.message)

    def message(self, eio_sid: str, data: Any) -> None:
        socket = self._socketio.server.eio.sockets.get(eio_sid)
        if socket is None or socket.closed:
            return
        if not self._limits_of(socket).event(time.monotonic()):
            self._too_many(socket, eio_sid)
            return
        try:
            if not isinstance(data, str) or not data:
                raise Malformed("not a Socket.IO packet")
            self._handle(eio_sid, data)
        except Malformed as exc:
            log.info("%s: %s", eio_sid, exc)
            abort(socket, "malformed packet")

    def may_resume(self, sid: str) -> bool:
        socket = engineio_socket(self._socketio, sid)
        # No Engine.IO socket: Flask-SocketIO's test client, which has no transport either.
        return socket is None or self._limits_of(socket).resume(time.monotonic())

    def _limits_of(self, socket: Any) -> ClientLimits:
        limits = self._limits.get(socket)
        if limits is None:
            limits = self._limits[socket] = ClientLimits(time.monotonic())
        return limits

    def _too_many(self, socket: Any, eio_sid: str) -> None:
        if socket.closing:
            return
        log.warning("closing socket %s: too many events", eio_sid)
        sid = self._socketio.server.manager.sid_from_eio_sid(eio_sid, "/")
        if sid is not None:
            self._socketio.emit(CLOSING, {"reason": TOO_MANY_EVENTS}, to=sid)
        # Not an abort: the reason goes out before Engine.IO's close packet.
        socket.close(wait=False)
