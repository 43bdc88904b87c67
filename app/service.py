"""What a web node runs beside its requests: a loop started once with the server, stopped at shutdown."""

from __future__ import annotations

from flask import Flask
from flask_socketio import SocketIO


class BackgroundService:
    def __init__(self, app: Flask, socketio: SocketIO) -> None:
        self._app = app
        self._socketio = socketio
        self._started = False
        self._stopping = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._socketio.start_background_task(self._run)

    def stop(self) -> None:
        self._stopping = True

    def _run(self) -> None:
        raise NotImplementedError
