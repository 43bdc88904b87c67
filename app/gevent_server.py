"""The server ``run.py`` starts in gevent mode: gevent's WSGI server, as Flask-SocketIO runs it,
with connections that send without delay (``app.tcp``) and timed request heads
(``app.http_timeouts``)."""

from __future__ import annotations

from typing import Any

from flask import Flask
from gevent import pywsgi

from app.extensions import socketio
from app.http_timeouts import RequestHeads
from app.tcp import send_without_delay


class NoDelayHandler(pywsgi.WSGIHandler):
    def handle(self) -> None:
        send_without_delay(self.socket)
        super().handle()


class TimedHandler(NoDelayHandler):
    idle_timeout: float  # set by serve

    def __init__(self, sock: Any, address: Any, server: Any) -> None:
        super().__init__(sock, address, server)
        self.rfile.close()
        self._heads = RequestHeads(sock, self.idle_timeout)
        self.rfile = self._heads.rfile

    def handle_one_request(self) -> Any:
        # None ends the connection. A head past its deadline raises TimeoutError, which gevent
        # takes as a dropped client (in the request line) or hands to _handle_client_error.
        if not self._heads.next_head():
            return None
        return super().handle_one_request()

    def get_environ(self) -> dict[str, Any]:
        self._heads.head_read()
        environ = super().get_environ()
        if environ.get("CONTENT_LENGTH") and not environ.get("HTTP_TRANSFER_ENCODING"):
            # Werkzeug then reads a body of known length through its LimitedStream, which
            # answers one that stops coming (a TimeoutError) with 400 as in the other modes,
            # not with the application's 500; gevent's input still ends the body at its length.
            environ.pop("wsgi.input_terminated", None)
        return environ

    def _handle_client_error(self, ex: Exception) -> Any:
        # gevent's hook for a request it could not read: a slow head is closed unanswered.
        if isinstance(ex, TimeoutError):
            return None
        return super()._handle_client_error(ex)


def serve(app: Flask, host: str, port: int) -> None:
    handler = type("Handler", (TimedHandler,), {"idle_timeout": app.config["HTTP_IDLE_TIMEOUT"]})
    socketio.run(app, host=host, port=port, handler_class=handler)
