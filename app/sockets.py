"""Socket.IO handlers, kept thin: authenticate, catch the client up, hand it to the fan-out."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Flask, current_app, request
from flask_login import current_user
from flask_socketio import ConnectionRefusedError, emit

from app.extensions import db, socketio
from app.models import Token, User
from app.replay import catch_up
from app.sansio.protocol import PROTOCOL_ERROR, PROTOCOL_VERSION, RESUME, WELCOME, parse_last_seq

AUTH_REQUIRED = "authentication required"


def register_socket_handlers(app: Flask) -> None:
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
    user = db.session.get(User, _fanout().user_of(request.sid))
    _fanout().begin_replay(request.sid)
    _sync(user, last_seq, welcome=False)


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
    for name, data in result.events:
        emit(name, data)
    _fanout().go_live(request.sid, result.floor)


def _fanout():
    return current_app.extensions["fanout"]
