"""eventlet's server, lean per connection: what ``app.eventlet_server`` serves with (eventlet mode, the default).

``LeanSocket``: Engine.IO sockets that hold no green thread of their own while idle.

python-engineio gives every WebSocket three green threads for its whole life: the
connection's reader (the WSGI request's own green thread, 29 frames deep), a writer
waiting on the socket's queue, and one sleeping until the next ping. Each parked green
thread keeps its saved C stack and its own chunk of frame stack, ~8 KiB and more; for
10,000 idle sockets that was most of the memory. Here the ping is a timer in eventlet's
hub; the writer runs only while the queue holds packets (the next packet put on an empty
queue starts it again); and the reader is a listener in the hub: when the connection has
bytes to read, a green thread reads one message, hands it on and ends. What a socket does
is unchanged: the same packets, in the same order, the same ping and timeout rules, the
same upgrade from long-polling; the queue stays the socket's ``queue`` that the fan-out
watches.

``LeanHttpProtocol``: eventlet's HTTP connection handling, with small buffers and the header
and idle timeouts of ``app.http_timeouts``, that lets a WebSocket outlive the request that
opened it: the request's green thread ends and the connection stays open, owned by its
``LeanSocket``.

Written against python-engineio 4.15 (``_websocket_handler`` follows its structure);
pinned in requirements.txt, and the end-to-end tests run every connection through it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

import engineio.socket
import eventlet.wsgi
from engineio import exceptions, packet, payload
from eventlet import hubs, queue, spawn
from eventlet.greenthread import GreenThread

from app.fanout import abort
from app.http_timeouts import TimedHeads
from app.sansio.guard import Malformed, engineio_packet

log = logging.getLogger(__name__)

# The WSGI environ key of LeanHttpProtocol's hand-over: a WebSocket handler calls it with
# what takes the connection over once its request has ended.
HAND_OVER = "lean_socket.hand_over"
TRY_AGAIN_LATER = 1013  # the WebSocket close code (RFC 6455's registry)
_RECORD_SEPARATOR = "\x1e"  # between the packets of one long-polling request (Engine.IO v4)


class _Outbox(queue.Queue):
    """The socket's queue of packets to write; every put makes sure a writer runs."""

    def __init__(self, wake: Callable[[], None]) -> None:
        super().__init__()
        self._wake = wake

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        self._wake()


class LeanSocket(engineio.socket.Socket):
    # Open WebSockets in this process, and how many it takes (use_lean_sockets). They hold no
    # place in eventlet's pool of green threads, so the pool's size no longer bounds them.
    open_count = 0
    max_open = 0

    def __init__(self, server: Any, sid: str) -> None:
        super().__init__(server, sid)
        self.queue = _Outbox(self._wake_writer)
        # Set once the WebSocket is up; long-polling requests take packets from the queue
        # themselves, and after the connection closes nothing is written any more.
        self._ws: Any = None
        self._writer: GreenThread | None = None
        self._listener: Any = None  # in the hub while waiting for the client's next message

    def schedule_ping(self) -> None:
        if self.last_ping:
            self.last_ping = None
            hubs.get_hub().schedule_call_global(self.server.ping_interval, self._ping)

    def _ping(self) -> None:
        # A timer callback runs in the hub itself, which must not block or switch: hence
        # no send() (it may log) but a put, which at most schedules the writer.
        if not self.closing and not self.closed:
            self.last_ping = time.time()
            self.queue.put(packet.Packet(packet.PING))

    def _wake_writer(self) -> None:
        if self._ws is not None and self._writer is None:
            self._writer = spawn(self._write)

    def _write(self) -> None:
        ws = self._ws
        try:
            while self.queue.qsize():
                pkt = self.queue.get(block=False)
                self.queue.task_done()
                if pkt is None:  # the socket is closing
                    break
                ws.send(pkt.encode())
            else:
                return  # all written; the next put starts a writer again
        except OSError as exc:
            log.info("%s: write failed (%s), closing", self.sid, exc)
        finally:
            self._writer = None
        self._hang_up()

    def _hang_up(self) -> None:
        ws, self._ws = self._ws, None
        self._stop_listening()
        if ws is not None:
            LeanSocket.open_count -= 1
            _discard_input(ws.socket)
            ws.close()

    def _websocket_handler(self, ws: Any) -> list[Any]:
        hand_over = ws.environ.pop(HAND_OVER, None)
        if hand_over is None:
            raise RuntimeError("LeanSocket needs eventlet's server with LeanHttpProtocol")
        # It holds the request's protocol object, which the connection no longer needs.
        ws.environ.pop("eventlet.set_idle", None)
        # Bounds a read that stalls in the middle of a message; an idle client is the ping
        # timeout's business (python-engineio's service task).
        ws.socket.settimeout(self.server.ping_interval + self.server.ping_timeout)
        if LeanSocket.open_count >= LeanSocket.max_open:
            # Full: the WebSocket's own "try again later", before Engine.IO's open packet goes
            # out. Clients reconnect with backoff; behind a balancer, perhaps to another node.
            # A client on long-polling that asked to upgrade stays on long-polling.
            log.warning("%s: %d WebSockets open, closing a new one", self.sid, LeanSocket.open_count)
            ws.close(close_data=(TRY_AGAIN_LATER, "server full"))
            if not self.connected:
                self.close(wait=False, abort=True, reason=self.server.reason.SERVER_DISCONNECT)
            return []

        if self.connected:
            # Connected over long-polling first: this is the upgrade.
            if not self._upgrade(ws):
                return []
        else:
            self.connected = True
            self.upgraded = True

        self._ws = ws
        LeanSocket.open_count += 1
        if self.queue.qsize():
            self._wake_writer()
        # eventlet sends a close frame when this handler returns; the connection lives on.
        ws.websocket_closed = True
        hand_over(self._take_over)
        return []

    def _take_over(self) -> None:
        if self._ws is None:  # closed while its request was ending
            return
        self._ws.websocket_closed = False
        self._listen()

    def _listen(self) -> None:
        hub = hubs.get_hub()
        # Every close goes through _hang_up, which removes the listener first: nothing for
        # the hub to throw back.
        self._listener = hub.add(hub.READ, self._ws.socket.fileno(), self._on_readable, _nothing, _nothing)

    def _stop_listening(self) -> None:
        if self._listener is not None:
            hubs.get_hub().remove(self._listener)
            self._listener = None

    def _on_readable(self, _fileno: int) -> None:
        # In the hub, which must not block: a message may arrive in pieces, so a green
        # thread reads it, and listens again after.
        self._stop_listening()
        spawn(self._read_one)

    def _read_one(self) -> None:
        ws = self._ws
        if ws is None:
            return
        if self._receive(ws):
            if self._ws is not None:
                self._listen()
        else:
            self._end()

    def _receive(self, ws: Any) -> bool:
        """Read and take in the client's next message; False once the connection is over."""
        try:
            data = _wait(ws, self.server.max_http_buffer_size)
        except (OSError, ValueError, RuntimeError) as exc:
            # A reset, a read timeout, a malformed or too large frame.
            if not self.closed:
                log.info("%s: connection error %r, closing", self.sid, exc)
            return False
        if data is None:  # closed by the client
            return False
        try:
            self.receive(engineio_packet(data))
        except (Malformed, exceptions.UnknownPacketError) as exc:
            # Nothing a client of this protocol sends: the socket and its place go now.
            log.info("%s: malformed frame (%s), closing", self.sid, exc)
            abort(self, "malformed frame")
            return False
        except exceptions.SocketIsClosedError:
            return False
        return not self.closed

    def handle_post_request(self, environ: dict[str, Any]) -> None:
        """A long-polling client's packets, decoded as strictly as a WebSocket's frames."""
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length > self.server.max_http_buffer_size:
            raise exceptions.ContentTooLongError()
        try:
            body = environ["wsgi.input"].read(length).decode("utf-8")
            packets = [engineio_packet(p) for p in body.split(_RECORD_SEPARATOR)] if body else []
            if len(packets) > payload.Payload.max_decode_packets:
                raise Malformed("too many packets in one request")
            for pkt in packets:
                self.receive(pkt)
        except (Malformed, UnicodeDecodeError, exceptions.UnknownPacketError) as exc:
            log.info("%s: malformed request (%s), closing", self.sid, exc)
            abort(self, "malformed request")
            # Engine.IO answers it with 400.
            raise exceptions.EngineIOError() from None

    def _end(self) -> None:
        self.queue.put(None)  # the writer closes the connection
        self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)

    def _upgrade(self, ws: Any) -> bool:
        self.upgrading = True  # hold packet sends during the upgrade
        try:
            return self._upgrade_handshake(ws)
        except Malformed as exc:
            log.info("%s: failed websocket upgrade, %s", self.sid, exc)
            self.upgrading = False
            return False

    def _upgrade_handshake(self, ws: Any) -> bool:
        pkt = engineio_packet(_wait(ws, self.server.max_http_buffer_size))
        if pkt.packet_type != packet.PING or pkt.data != "probe":
            log.info("%s: failed websocket upgrade, no PING packet", self.sid)
            self.upgrading = False
            return False
        ws.send(packet.Packet(packet.PONG, data="probe").encode())
        self.queue.put(packet.Packet(packet.NOOP))  # ends the pending long-poll
        pkt = engineio_packet(_wait(ws, self.server.max_http_buffer_size))
        if pkt.packet_type != packet.UPGRADE:
            log.info("%s: failed websocket upgrade, expected UPGRADE packet", self.sid)
            self.upgraded = False
            self.upgrading = False
            return False
        self.upgraded = True
        self.upgrading = False
        return True


def _wait(ws: Any, limit: int) -> Any:
    data = ws.wait()
    if data and len(data) > limit:
        raise ValueError("packet is too large")
    return data


def _discard_input(sock: Any) -> None:
    """Drop what the client sent that nobody will read: closing over unread input resets the
    connection, and the client's kernel then discards what it had not yet read (the reason
    for the close, the close itself). Bounded: a client that keeps sending gets its reset."""
    timeout = sock.gettimeout()
    try:
        sock.settimeout(0)
        for _ in range(16):
            if not sock.recv(65536):
                break
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sock.settimeout(timeout)


def _nothing(*_args: object) -> None:
    pass


class _HandedOver:
    """Stands in for a connection whose WebSocket took it over, in eventlet's server."""

    def shutdown(self, _how: int = 0) -> None:
        pass

    def close(self) -> None:
        pass


class LeanHttpProtocol(TimedHeads, eventlet.wsgi.HttpProtocol):
    # A connection keeps its HTTP read and write buffers (8 + 16 KiB by default) for as long
    # as it speaks HTTP: a long-polling client's, for its whole life; a WebSocket's, until its
    # hand-over. Small buffers only mean more, smaller socket calls.
    rbufsize = 1024
    wbufsize = 1024
    _taker: Callable[[], None] | None = None

    def idle_timeout(self) -> float:
        # eventlet's server carries the idle timeout as its keep-alive timeout, which it also
        # announces to clients.
        return self.server.keepalive

    def get_environ(self) -> dict[str, Any]:
        self._heads.head_read()
        environ = super().get_environ()
        environ[HAND_OVER] = self._hand_over
        return environ

    def _hand_over(self, taker: Callable[[], None]) -> None:
        self._taker = taker

    def finish(self) -> None:
        if self._taker is None:
            super().finish()
            return
        # The request is over but not its connection: its files go, the socket stays open,
        # and the server's clean-up (which shuts the connection down) finds nothing to do.
        # The connection no longer holds a place in the server's pool of green threads.
        BaseHTTPRequestHandler.finish(self)
        self.conn_state[1] = _HandedOver()
        self._taker()


def use_lean_sockets(max_open: int) -> None:
    """Make python-engineio create ``LeanSocket``s (it looks the class up on its module),
    at most ``max_open`` WebSockets at once."""
    LeanSocket.max_open = max_open
    engineio.socket.Socket = LeanSocket  # type: ignore[misc]
