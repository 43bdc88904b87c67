"""The server ``run.py`` starts in eventlet mode (the default): eventlet's WSGI server with
lean sockets and timed request heads (``app.lean_socket``, ``app.http_timeouts``), an
open-file limit fitted to ``MAX_CONNECTIONS``, and a listening socket (``Listener``) whose
connections send without delay (``app.tcp``) and whose accept outlasts running out of files.

eventlet's accept loop ends on any error but a few, and "too many open files" is not one of
them: one connection past the process's file limit would stop the node taking any more.
Here accept waits instead, as Go's HTTP server does, while the kernel holds new connections
in the listen backlog; when connections close, it takes them.
"""

from __future__ import annotations

import errno
import logging
import socket
from typing import Any

import eventlet
import eventlet.wsgi
from flask import Flask

from app.file_limit import files_wanted, fit_file_limit
from app.lean_socket import LeanHttpProtocol, use_lean_sockets
from app.tcp import send_without_delay

log = logging.getLogger(__name__)

# Out of files, accept is tried again after this long, doubling up to LAST_RETRY.
FIRST_RETRY = 0.005
LAST_RETRY = 1.0
# What accept fails with while the process or the system lacks something that a closing
# connection gives back.
_EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class Listener:
    """The listening socket: connections without Nagle's delay, and an ``accept`` that waits
    out a lack of file descriptors."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock

    def accept(self) -> tuple[Any, Any]:
        delay = FIRST_RETRY
        while True:
            try:
                conn, address = self._sock.accept()
            except OSError as exc:
                if exc.errno not in _EXHAUSTED:
                    raise
                if delay == FIRST_RETRY:
                    log.warning(
                        "cannot accept connections: %s; new ones wait until others close", exc.strerror
                    )
                eventlet.sleep(delay)
                delay = min(delay * 2, LAST_RETRY)
                continue
            send_without_delay(conn)
            return conn, address

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def serve(app: Flask, host: str, port: int) -> None:
    max_connections = app.config["MAX_CONNECTIONS"]
    wanted = files_wanted(max_connections)
    limit = fit_file_limit(wanted)
    if limit < wanted:
        log.warning(
            "MAX_CONNECTIONS=%d needs %d open files or more and this process may open %d "
            "(raise its hard limit: ulimit -Hn, or ulimits in docker-compose.yml); "
            "past that, new connections wait until others close",
            max_connections,
            wanted,
            limit,
        )
    use_lean_sockets(max_connections)
    family, _type, _proto, _name, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    listener = Listener(eventlet.listen(address, family))
    eventlet.wsgi.server(
        listener,
        app,
        log_output=app.debug,
        # eventlet serves 1,024 requests at once unless told otherwise, and every long-poll
        # holds one; an open WebSocket holds none (its request has ended, see lean_socket).
        max_size=max_connections,
        protocol=LeanHttpProtocol,
        # A kept-alive connection holds its green thread between requests, too.
        keepalive=app.config["HTTP_IDLE_TIMEOUT"],
    )
