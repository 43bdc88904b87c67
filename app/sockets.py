"""Socket.IO handlers, kept thin: authenticate, join the owner's room, send a snapshot."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app
from flask_login import current_user
from flask_socketio import ConnectionRefusedError, emit, join_room

from app.extensions import socketio
from app.models import User
from app.progress import payload
from app.sansio.events import TASK_PROGRESS, user_room

AUTH_REQUIRED = "authentication required"


def register_socket_handlers(app: Flask) -> None:
    socketio.on_event("connect", on_connect)


def authenticate(auth: Any) -> User | None:
    """A browser brings its login session; any other client brings ``auth={"token": ...}``."""
    if current_user.is_authenticated:
        return current_user._get_current_object()
    if isinstance(auth, dict) and isinstance(auth.get("token"), str):
        return User.from_token(auth["token"])
    return None


def on_connect(auth: Any = None) -> None:
    user = authenticate(auth)
    if user is None:
        raise ConnectionRefusedError(AUTH_REQUIRED)
    if not current_app.extensions["progress_subscriber"].ensure_started():
        raise ConnectionRefusedError("progress channel unavailable")
    # Rooms come from the authenticated user only; clients have no way to name one.
    join_room(user_room(user.id))
    for task in user.unfinished_tasks():
        emit(TASK_PROGRESS, dict(payload(task)))
