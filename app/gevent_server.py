"""The server ``run.py`` starts in gevent mode: gevent's WSGI server, as Flask-SocketIO runs it,
with connections that send without Nagle's delay (see ``app.eventlet_server`` for why)."""

from __future__ import annotations

import contextlib
import socket

from flask import Flask
from gevent import pywsgi

from app.extensions import socketio


class NoDelayHandler(pywsgi.WSGIHandler):
    def handle(self) -> None:
        if self.socket.family in (socket.AF_INET, socket.AF_INET6):
            # A client may have gone already: its first read or write will say so.
            with contextlib.suppress(OSError):
                self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle()


def serve(app: Flask, host: str, port: int) -> None:
    socketio.run(app, host=host, port=port, handler_class=NoDelayHandler)
