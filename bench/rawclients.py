"""Many light Socket.IO clients in one asyncio process: raw Engine.IO v4 over a WebSocket.

``python -m bench.rawclients`` answers JSON-line commands on stdin (see ``COMMANDS``). A
full python-socketio client costs a task, queues and an aiohttp session per connection;
10,000 of those in one process measure the client, not the server. This one is a
callback protocol per socket, only as much protocol as the server speaks to it:
the WebSocket upgrade, ``0`` open, ``40`` connect with the token, ``2``/``3`` pings,
``42`` events. Like a browser, a client offers permessage-deflate unless told not to; the
product declines it, and a server that accepts it fails the connect (frames this client
cannot read).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from bench.support import raise_file_limit

PROGRESS_PREFIX = b'42["task_progress",'
SUCCEEDED = b'"status":"succeeded"'


def _frame(text: bytes) -> bytes:
    """A masked, final text frame (clients must mask; RFC 6455 5.3)."""
    key = os.urandom(4)
    n = len(text)
    if n < 126:
        header = struct.pack("!BB", 0x81, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x81, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
    stream = (key * (n // 4 + 1))[:n]
    masked = (int.from_bytes(text, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")
    return header + key + masked


class Counters:
    def __init__(self) -> None:
        self.progress = 0
        self.succeeded = 0
        self.other = 0
        # Receipt time of the latest task_progress, and of the latest final "succeeded" one.
        self.last = 0.0
        self.last_succeeded = 0.0
        self.armed = False
        # (receipt time, the event's ts) of the first task_progress after ``arm``, per connection.
        self.first: list[tuple[float, float]] = []


class EioClient(asyncio.Protocol):
    def __init__(
        self, host: str, path: str, auth: dict[str, Any], counters: Counters, offer_deflate: bool
    ) -> None:
        self._host = host
        self._path = path
        self._auth = auth
        self._counters = counters
        self._offer = (
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
            if offer_deflate
            else ""
        )
        self._buffer = bytearray()
        self._upgraded = False
        self._transport: asyncio.Transport | None = None
        self._got_first = False
        self.ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        key = base64.b64encode(os.urandom(16)).decode()
        self._transport.write(
            (
                f"GET {self._path} HTTP/1.1\r\nHost: {self._host}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{self._offer}\r\n"
            ).encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed before connect: {exc}"))

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def send(self, text: bytes) -> None:
        if self._transport is not None and not self.closed:
            self._transport.write(_frame(text))

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buf = self._buffer
        buf += data
        if not self._upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.ready.set_exception(ConnectionError(bytes(buf[: buf.find(b"\r\n")]).decode()))
                self.close()
                return
            if b"sec-websocket-extensions" in bytes(buf[:end]).lower():
                self.ready.set_exception(ConnectionError("the server accepted compression"))
                self.close()
                return
            del buf[: end + 4]
            self._upgraded = True
        pos, size = 0, len(buf)
        while size - pos >= 2:
            opcode, length = buf[pos] & 0x0F, buf[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if size - pos < 4:
                    break
                length, head = struct.unpack_from("!H", buf, pos + 2)[0], 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, head = struct.unpack_from("!Q", buf, pos + 2)[0], 10
            if size - pos < head + length:
                break
            payload = bytes(buf[pos + head : pos + head + length])
            pos += head + length
            if opcode == 0x1:
                self._packet(payload, now)
            elif opcode == 0x9:  # a WebSocket-level ping
                self._transport.write(b"\x8a\x80" + os.urandom(4))  # type: ignore[union-attr]
            elif opcode == 0x8:
                self.close()
        del buf[:pos]

    def _packet(self, packet: bytes, now: float) -> None:
        if packet.startswith(PROGRESS_PREFIX):
            counters = self._counters
            counters.progress += 1
            counters.last = now
            if SUCCEEDED in packet:
                counters.succeeded += 1
                counters.last_succeeded = now
            if counters.armed and not self._got_first:
                self._got_first = True
                data = json.loads(packet[2:])[1]
                counters.first.append((now, data["ts"]))
        elif packet == b"2":
            self.send(b"3")
        elif packet.startswith(b"42"):
            self._counters.other += 1
        elif packet.startswith(b"0{"):
            self.send(b"40" + json.dumps(self._auth).encode())
        elif packet.startswith(b"40"):
            if not self.ready.done():
                self.ready.set_result(json.loads(packet[2:]).get("sid", ""))
        elif packet.startswith(b"44") and not self.ready.done():
            self.ready.set_exception(ConnectionRefusedError(packet[2:].decode()))

    def rearm(self) -> None:
        self._got_first = False

    def stall(self) -> None:
        """Stop reading, as a frozen tab or a dead link would: the server's writes back up.

        A small receive buffer first, or loopback's autotuning (up to tens of MB) would
        absorb the backlog in the kernel for a long while.
        """
        if self._transport is not None:
            sock = self._transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            self._transport.pause_reading()


class Clients:
    def __init__(self) -> None:
        self.counters = Counters()
        self.clients: list[EioClient] = []

    async def connect(
        self, url: str, tokens: list[list[Any]], concurrency: int, timeout: float, offer_deflate: bool
    ) -> dict:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        path = "/socket.io/?EIO=4&transport=websocket"
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(concurrency)
        errors: dict[str, int] = {}
        started, held = time.time(), len(self.clients)

        async def one(token: str) -> None:
            async with gate:
                client = EioClient(f"{host}:{port}", path, {"token": token}, self.counters, offer_deflate)
                try:
                    await asyncio.wait_for(loop.create_connection(lambda: client, host, port), timeout)
                    await asyncio.wait_for(asyncio.shield(client.ready), timeout)
                    self.clients.append(client)
                except (OSError, TimeoutError, ConnectionError) as exc:
                    client.close()
                    kind = type(exc).__name__
                    errors[kind] = errors.get(kind, 0) + 1

        await asyncio.gather(*(one(token) for _uid, token in tokens))
        return {
            "connected": len(self.clients) - held,
            "total": len(self.clients),
            "failed": sum(errors.values()),
            "errors": errors,
            "seconds": time.time() - started,
        }

    async def count(self) -> dict:
        c = self.counters
        return {
            "t": time.time(),
            "progress": c.progress,
            "succeeded": c.succeeded,
            "other": c.other,
            "last": c.last,
            "last_succeeded": c.last_succeeded,
        }

    async def until(self, field: str, total: int, timeout: float) -> dict:
        """Wait until the counter ``field`` reaches ``total`` (or the timeout); then ``count``."""
        deadline = time.monotonic() + timeout
        while getattr(self.counters, field) < total and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        return await self.count()

    async def arm(self) -> dict:
        self.counters.armed, self.counters.first = True, []
        for client in self.clients:
            client.rearm()
        return {"t": time.time()}

    async def first(self, expected: int, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while len(self.counters.first) < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        firsts, self.counters.armed = self.counters.first, False
        return {
            "latencies": [recv - ts for recv, ts in firsts],
            "open": sum(not c.closed for c in self.clients),
        }

    async def stall(self) -> dict:
        for client in self.clients:
            client.stall()
        return {"stalled": len(self.clients)}

    async def close(self) -> dict:
        for client in self.clients:
            client.close()
        self.clients = []
        await asyncio.sleep(0.1)
        return {}


async def serve(handlers: dict[str, Callable[..., Awaitable[dict]]]) -> None:
    """Answer JSON-line commands from stdin until it closes or ``quit`` arrives."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        command = json.loads(line)
        name = command.pop("cmd")
        if name == "quit":
            break
        try:
            answer = await handlers[name](**command)
        except Exception as exc:  # noqa: BLE001 -- reported to the orchestrator, which stops the run
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


def main() -> None:
    raise_file_limit()
    clients = Clients()

    async def run() -> None:
        await serve(
            {
                "connect": clients.connect,
                "count": clients.count,
                "until": clients.until,
                "arm": clients.arm,
                "first": clients.first,
                "stall": clients.stall,
                "close": clients.close,
            }
        )
        await clients.close()

    asyncio.run(run())


if __name__ == "__main__":
    main()
