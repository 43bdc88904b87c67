"""The server ``run.py`` starts in gevent mode: gevent's WSGI server, as Flask-SocketIO runs it,
with connections that send without delay (``app.tcp``)."""

from __future__ import annotations

from flask import Flask
from gevent import pywsgi

from app.extensions import socketio
from app.tcp import send_without_delay


class NoDelayHandler(pywsgi.WSGIHandler):
    def handle(self) -> None:
        send_without_delay(self.socket)
        super().handle()


def serve(app: Flask, host: str, port: int) -> None:
    socketio.run(app, host=host, port=port, handler_class=NoDelayHandler)
