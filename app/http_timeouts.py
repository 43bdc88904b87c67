"""Timeouts on the node's HTTP connections, the same in all three modes: a client sends each
request head (request line and headers) within ``HEADER_TIMEOUT`` seconds, and is never silent
for ``HTTP_IDLE_TIMEOUT`` seconds while the node waits for it: for a kept-alive connection's
next request, or for the next bytes of a request's body.

eventlet's, gevent's and Werkzeug's servers bound none of this: a connection that sends half a
head, or one byte of it now and then, or a head and then no body, holds its place for as long
as it likes (under eventlet, one of the ``MAX_CONNECTIONS`` green threads that serve requests,
so enough of them starve every real request). A socket timeout alone would not do for the head,
as each trickled byte starts it again: the head has a deadline, and every read of it waits at
most until then. A connection past a timeout is closed without an answer, as nginx does; a body
that stalls fails the request that reads it (Werkzeug's ``ClientDisconnected``, a 400).

A body sent at any pace that keeps coming is read to its end. Once the head is in, nothing else
is timed here: a long-poll waits up to ``PING_INTERVAL`` for data, and a WebSocket, which
reads its socket directly, lives by Engine.IO's ping rules.
"""

from __future__ import annotations

import io
import time
from typing import Any

# Generous for a real client: a browser or a proxy sends its head at once (nginx's
# client_header_timeout is 60 s, Apache's 20-40 s).
HEADER_TIMEOUT = 10.0


class ConnectionReader(io.RawIOBase):
    """What a server's buffered ``rfile`` reads the connection through: while a deadline is
    set (a request head), each read waits at most until then; otherwise (a body) each read
    waits at most the idle timeout."""

    def __init__(self, sock: Any, idle_timeout: float) -> None:
        super().__init__()
        # Named as socket.SocketIO names it: simple-websocket takes a gevent connection's socket
        # from the request's rfile, as ``rfile.raw._sock``.
        self._sock = sock
        self._timeout = sock.gettimeout()
        self._idle_timeout = idle_timeout
        self._deadline: float | None = None

    def wait_until(self, deadline: float | None) -> None:
        self._deadline = deadline
        if deadline is None:
            self._sock.settimeout(self._timeout)

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._sock.fileno()

    def readinto(self, buffer: Any) -> int:
        if self._deadline is not None:
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the client took too long to send its request")
            self._sock.settimeout(left)
            return self._sock.recv_into(buffer)
        # The socket keeps its own timeout for what uses it directly: a WebSocket, whose
        # handshake was this connection's last request.
        self._sock.settimeout(self._idle_timeout)
        try:
            return self._sock.recv_into(buffer)
        finally:
            self._sock.settimeout(self._timeout)


class RequestHeads:
    """One connection's ``rfile``, with its heads timed. A server's handler reads requests from
    ``rfile``, calls ``next_head`` before each and ``head_read`` once it has parsed the head;
    a read past a timeout raises ``TimeoutError`` (the servers close the connection on it)."""

    def __init__(self, sock: Any, idle_timeout: float, buffer_size: int = io.DEFAULT_BUFFER_SIZE) -> None:
        self._reader = ConnectionReader(sock, idle_timeout)
        self.rfile = io.BufferedReader(
            self._reader, buffer_size if buffer_size > 0 else io.DEFAULT_BUFFER_SIZE
        )
        self._idle_timeout = idle_timeout
        self._kept_alive = False
        # The first head is timed from the connection's accept: one that never sends a byte
        # is as slow a head as any.
        self._reader.wait_until(time.monotonic() + HEADER_TIMEOUT)

    def next_head(self) -> bool:
        """Start timing the next request's head; False when the client closed the connection or
        began no new request within the idle timeout (then close it)."""
        if self._kept_alive:
            self._reader.wait_until(time.monotonic() + self._idle_timeout)
            try:
                # Waits for the next request's first byte without taking it from the buffer.
                if not self.rfile.peek(1):
                    return False
            except OSError:  # idle past the timeout, or reset by the client: closed either way
                return False
            self._reader.wait_until(time.monotonic() + HEADER_TIMEOUT)
        return True

    def head_read(self) -> None:
        """The head is in: from here each read of the body may wait the idle timeout."""
        self._kept_alive = True
        self._reader.wait_until(None)


class TimedHeads:
    """Mixed into an ``http.server``-style handler (eventlet's ``HttpProtocol``, Werkzeug's
    ``WSGIRequestHandler``): its ``rfile`` becomes a ``RequestHeads``'s. The handler calls
    ``self._heads.head_read()`` where it builds the request's environ."""

    _heads: RequestHeads
    rbufsize: int

    def idle_timeout(self) -> float:
        raise NotImplementedError

    def setup(self) -> None:
        super().setup()
        self.rfile.close()
        self._heads = RequestHeads(self.connection, self.idle_timeout(), self.rbufsize)
        self.rfile = self._heads.rfile

    def handle_one_request(self) -> None:
        # A head past its deadline raises TimeoutError, which both servers take as a timed-out
        # connection: closed, nothing answered.
        if self._heads.next_head():
            super().handle_one_request()
        else:
            self.close_connection = True
