"""``python -m bench.sioclients``: one python-socketio ``AsyncClient`` per user, all in one process.

The latency section measures what a real Socket.IO client sees, so these are the library's
own clients (asyncio, WebSocket transport, token auth), not the light ones of
``bench.rawclients``. Each ``task_progress`` is stamped with ``time.time()`` on arrival;
``drain`` hands the stamps to the orchestrator.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import socketio

from bench.rawclients import serve
from bench.support import raise_file_limit


class Clients:
    def __init__(self) -> None:
        self.clients: list[socketio.AsyncClient] = []
        # (receipt, ts, volatile, task_id, status) per task_progress event.
        self.events: list[tuple[float, float, bool, str, str]] = []

    async def connect(self, url: str, tokens: list[list[Any]], concurrency: int = 20) -> dict:
        gate = asyncio.Semaphore(concurrency)
        started = time.time()

        async def one(token: str) -> None:
            client = socketio.AsyncClient(reconnection=False)
            client.on("task_progress", self._progress)
            async with gate:
                await client.connect(url, auth={"token": token}, transports=["websocket"], wait_timeout=20)
            self.clients.append(client)

        await asyncio.gather(*(one(token) for _uid, token in tokens))
        return {"connected": len(self.clients), "seconds": time.time() - started}

    async def _progress(self, data: dict[str, Any]) -> None:
        self.events.append((time.time(), data["ts"], data["volatile"], data["task_id"], data["status"]))

    async def drain(self) -> dict:
        events, self.events = self.events, []
        return {"events": events, "connected": sum(c.connected for c in self.clients)}

    async def close(self) -> dict:
        await asyncio.gather(*(c.disconnect() for c in self.clients), return_exceptions=True)
        self.clients = []
        return {}


def main() -> None:
    raise_file_limit()
    clients = Clients()

    async def run() -> None:
        await serve({"connect": clients.connect, "drain": clients.drain, "close": clients.close})
        await clients.close()

    asyncio.run(run())


if __name__ == "__main__":
    main()
