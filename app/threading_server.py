"""The server ``run.py`` starts in threading mode: Werkzeug's, as Flask-SocketIO runs it (for
development; opting in is explicit), with connections that send without delay (``app.tcp``)
and timed request heads (``app.http_timeouts``)."""

from __future__ import annotations

from typing import Any

from flask import Flask
from werkzeug.serving import WSGIRequestHandler

from app.extensions import socketio
from app.http_timeouts import TimedHeads
from app.tcp import send_without_delay


class NoDelayRequestHandler(WSGIRequestHandler):
    def setup(self) -> None:
        super().setup()
        send_without_delay(self.connection)


class TimedRequestHandler(TimedHeads, NoDelayRequestHandler):
    timeout_after_idle: float  # set by serve

    def idle_timeout(self) -> float:
        return self.timeout_after_idle

    def make_environ(self) -> Any:
        self._heads.head_read()
        return super().make_environ()


def serve(app: Flask, host: str, port: int) -> None:
    handler = type(
        "RequestHandler", (TimedRequestHandler,), {"timeout_after_idle": app.config["HTTP_IDLE_TIMEOUT"]}
    )
    socketio.run(app, host=host, port=port, allow_unsafe_werkzeug=True, request_handler=handler)
