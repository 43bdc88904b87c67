"""eventlet's server, lean per connection: what ``run.py`` installs in eventlet mode (the default).

``LeanSocket``: Engine.IO sockets that hold no green thread of their own while idle.

python-engineio gives every WebSocket three green threads for its whole life: the
connection's reader, a writer waiting on the socket's queue, and one sleeping until the
next ping. Each parked green thread keeps its saved C stack and its own chunk of frame
stack, ~8 KiB; for 10,000 idle sockets, two of the three were ~170 MB. Here the ping is
a timer in eventlet's hub, and the writer runs only while the queue holds packets: the
next packet put on an empty queue starts it again. What a socket does is unchanged: the
same packets, in the same order, the same ping and timeout rules, the same upgrade from
long-polling; the queue stays the socket's ``queue`` that the fan-out watches.

``LeanHttpProtocol``: small HTTP buffers for connections that become WebSockets.

Written against python-engineio 4.15 (``_websocket_handler`` follows its structure);
pinned in requirements.txt, and the end-to-end tests run every connection through it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import engineio.socket
import eventlet.wsgi
from engineio import exceptions, packet
from eventlet import hubs, queue, spawn
from eventlet.greenthread import GreenThread

log = logging.getLogger(__name__)


class _Outbox(queue.Queue):
    """The socket's queue of packets to write; every put makes sure a writer runs."""

    def __init__(self, wake: Callable[[], None]) -> None:
        super().__init__()
        self._wake = wake

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        self._wake()


class LeanSocket(engineio.socket.Socket):
    def __init__(self, server: Any, sid: str) -> None:
        super().__init__(server, sid)
        self.queue = _Outbox(self._wake_writer)
        # Set once the WebSocket is up; long-polling requests take packets from the queue
        # themselves, and after the connection closes nothing is written any more.
        self._ws: Any = None
        self._writer: GreenThread | None = None

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
        self._ws = None
        ws.close()

    def _websocket_handler(self, ws: Any) -> list[Any]:
        def websocket_wait() -> Any:
            data = ws.wait()
            if data and len(data) > self.server.max_http_buffer_size:
                raise ValueError("packet is too large")
            return data

        sock = getattr(ws, "_sock", None) or getattr(ws, "socket", None)
        if hasattr(sock, "settimeout"):
            sock.settimeout(self.server.ping_interval + self.server.ping_timeout)

        if self.connected:
            # Connected over long-polling first: this is the upgrade.
            if not self._upgrade(websocket_wait, ws):
                return []
        else:
            self.connected = True
            self.upgraded = True

        self._ws = ws
        if self.queue.qsize():
            self._wake_writer()
        try:
            self._read(websocket_wait)
        finally:
            self.queue.put(None)  # the writer closes the connection and ends
            try:
                if self._writer is not None:
                    self._writer.wait()
            finally:
                self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)
        return []

    def _upgrade(self, websocket_wait: Callable[[], Any], ws: Any) -> bool:
        self.upgrading = True  # hold packet sends during the upgrade
        pkt = packet.Packet(encoded_packet=websocket_wait())
        if pkt.packet_type != packet.PING or pkt.data != "probe":
            log.info("%s: failed websocket upgrade, no PING packet", self.sid)
            self.upgrading = False
            return False
        ws.send(packet.Packet(packet.PONG, data="probe").encode())
        self.queue.put(packet.Packet(packet.NOOP))  # ends the pending long-poll
        pkt = packet.Packet(encoded_packet=websocket_wait())
        if pkt.packet_type != packet.UPGRADE:
            log.info("%s: failed websocket upgrade, expected UPGRADE packet", self.sid)
            self.upgraded = False
            self.upgrading = False
            return False
        self.upgraded = True
        self.upgrading = False
        return True

    def _read(self, websocket_wait: Callable[[], Any]) -> None:
        while True:
            try:
                data = websocket_wait()
            except (OSError, ValueError, RuntimeError) as exc:
                # A reset, a read timeout, a malformed frame: the connection is over.
                if not self.closed:
                    log.info("%s: connection error %r, closing", self.sid, exc)
                return
            if data is None:  # closed by the client
                return
            try:
                self.receive(packet.Packet(encoded_packet=data))
            except exceptions.UnknownPacketError:
                pass
            except exceptions.SocketIsClosedError:
                return


class LeanHttpProtocol(eventlet.wsgi.HttpProtocol):
    # A connection keeps its HTTP read and write buffers for life, though a WebSocket
    # stops using them once upgraded: at eventlet's sizes (8 + 16 KiB) they were a third
    # of an idle socket's memory. Small buffers only mean more, smaller socket calls.
    rbufsize = 1024
    wbufsize = 1024


def use_lean_sockets() -> None:
    """Make python-engineio create ``LeanSocket``s: it looks the class up on its module."""
    engineio.socket.Socket = LeanSocket  # type: ignore[misc]
