"""The server ``run.py`` starts in threading mode: Werkzeug's, as Flask-SocketIO runs it (for
development; opting in is explicit), with connections that send without delay (``app.tcp``)."""

from __future__ import annotations

from flask import Flask
from werkzeug.serving import WSGIRequestHandler

from app.extensions import socketio
from app.tcp import send_without_delay


class NoDelayRequestHandler(WSGIRequestHandler):
    def setup(self) -> None:
        super().setup()
        send_without_delay(self.connection)


def serve(app: Flask, host: str, port: int) -> None:
    socketio.run(app, host=host, port=port, allow_unsafe_werkzeug=True, request_handler=NoDelayRequestHandler)
