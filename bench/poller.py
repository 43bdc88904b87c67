"""``python -m bench.poller``: clients of ``GET /api/notifications?since=N`` (aiohttp, one process).

``latency``: each user polls on a fixed interval from a random phase, as the seed's page
did every 10 s, and every event is stamped on arrival. ``hammer``: closed-loop requests
from a few concurrent clients, to find what one web process sustains.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import aiohttp

from bench.rawclients import serve
from bench.support import latency_summary


async def latency(url: str, users: list[list[Any]], interval: float, duration: float) -> dict[str, Any]:
    """``users`` is ``[[token, since], ...]``; answers ``[receipt, ts]`` per event received."""
    received: list[tuple[float, float]] = []
    requests = 0

    async def poll(session: aiohttp.ClientSession, token: str, since: int, end: float) -> None:
        nonlocal requests
        next_poll = time.monotonic() + random.uniform(0, interval)  # noqa: S311 -- a phase, not a secret
        while True:
            await asyncio.sleep(max(0.0, next_poll - time.monotonic()))
            if time.monotonic() >= end:
                return
            async with session.get(
                f"{url}/api/notifications",
                params={"since": since},
                headers={"Authorization": f"Bearer {token}"},
            ) as response:
                body = await response.json()
            now = time.time()
            requests += 1
            received.extend((now, event["data"]["ts"]) for event in body["events"])
            since = body["last_seq"]
            next_poll += interval

    end = time.monotonic() + duration
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(poll(session, token, since, end) for token, since in users))
    return {"events": received, "requests": requests}


async def hammer(url: str, users: list[list[Any]], concurrency: int, duration: float) -> dict[str, Any]:
    """As many idle polls (nothing new since ``since``) as the server answers, for ``duration`` s."""
    times: list[float] = []
    errors = 0

    async def client(session: aiohttp.ClientSession, offset: int, end: float) -> None:
        nonlocal errors
        i = offset
        while time.monotonic() < end:
            token, since = users[i % len(users)]
            i += concurrency
            t = time.perf_counter()
            async with session.get(
                f"{url}/api/notifications",
                params={"since": since},
                headers={"Authorization": f"Bearer {token}"},
            ) as response:
                await response.read()
                if response.status != 200:
                    errors += 1
            times.append(time.perf_counter() - t)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.monotonic()
        await asyncio.gather(*(client(session, k, start + duration) for k in range(concurrency)))
        elapsed = time.monotonic() - start
    return {"requests": len(times), "errors": errors, "seconds": elapsed, **latency_summary(times)}


def main() -> None:
    asyncio.run(serve({"latency": latency, "hammer": hammer}))


if __name__ == "__main__":
    main()
