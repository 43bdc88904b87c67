"""The server ``run.py`` starts in threading mode: Werkzeug's, as Flask-SocketIO runs it (for
development; opting in is explicit), with connections that send without delay (``app.tcp``)
and timed request heads (``app.http_timeouts``)."""

from __future__ import annotations

from typing import Any

from flask import Flask
from werkzeug.serving import WSGIRequestHandler

from app.extensions import socketio
from app.http_timeouts import RequestHeads
from app.tcp import send_without_delay


class NoDelayRequestHandler(WSGIRequestHandler):
    def setup(self) -> None:
        super().setup()
        send_without_delay(self.connection)


class TimedRequestHandler(NoDelayRequestHandler):
    idle_timeout: float  # set by serve

    def setup(self) -> None:
        super().setup()
        self.rfile.close()
        self._heads = RequestHeads(self.connection, self.idle_timeout, self.rbufsize)
        self.rfile = self._heads.rfile

    def handle_one_request(self) -> None:
        # A head past its deadline raises TimeoutError, which http.server takes as a timed-out
        # request: logged, the connection closed.
        if self._heads.next_head():
            super().handle_one_request()
        else:
            self.close_connection = True

    def make_environ(self) -> Any:
        self._heads.head_read()
        return super().make_environ()


def serve(app: Flask, host: str, port: int) -> None:
    handler = type(
        "RequestHandler", (TimedRequestHandler,), {"idle_timeout": app.config["HTTP_IDLE_TIMEOUT"]}
    )
    socketio.run(app, host=host, port=port, allow_unsafe_werkzeug=True, request_handler=handler)
