"""Blocking calls: what the others see of one web process while something makes it wait.

One eventlet web process (``run.py`` as shipped). Three probes, each sequential with a pause
of ``PROBE_PAUSE`` between answers, from this process: ``GET /healthz``; ``GET /api/tasks``
as a user nobody else touches (a database read); and a live event published on the progress
channel (``ts`` stamped at publish) for another such user, whose python-socketio client
(``bench.sioclients``) stamps its arrival. Phases:

- idle; then a closed loop of ``GET /api/tasks`` from 4 clients (the request path's rate);
- brute force: 8 clients ``POST /api/tokens`` back to back, each guess at another unknown name
  from another address (``X-Forwarded-For``, the node trusting one proxy hop), as a botnet
  spreads its guesses past the rate limits: each costs the node a password hash;
- a lock held by another connection for ``LOCK_SECONDS``, the one the database has: on SQLite
  another process holds the write lock (``BEGIN IMMEDIATE``) while 4 clients ``POST
  /api/tokens`` (a token row to write) and the watchdog's prune needs it too; on PostgreSQL
  (``--database-url``) another connection holds one user's row (``SELECT ... FOR UPDATE``)
  while 4 clients of that user ``POST /api/tokens`` (the token's foreign key waits for the row).

Each probe's p50 and max per phase, and their ratio to idle. The probes never share a user
with the load, so any wait they see is the node's, not the database's.
"""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import requests
import sqlalchemy as sa
from redis import Redis

from app.sansio.events import TASK_PROGRESS, ChannelMessage, encode
from bench.core import Bench
from bench.payloads import progress_payload
from bench.stack import PASSWORD, Web
from bench.support import PYTHON, Child, latency_summary, table

PROBE_PAUSE = 0.1
BRUTE_FORCE_CLIENTS = 8
LOCK_WAITERS = 4
RATE_CLIENTS = 4
LOCK_SECONDS = 15.0
REQUEST_TIMEOUT = 30.0


class Probes:
    """The three probes of the module docstring, run in threads until ``stop``."""

    def __init__(self, web: Web, clients: Child, redis_url: str, channel: str, reader: tuple, listener: int):
        self.web = web
        self.clients = clients
        self.redis = Redis.from_url(redis_url)
        self.channel = channel
        self.reader_token = reader[1]
        self.listener = listener
        self.seq = 0
        self._published = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.samples: dict[str, list[float]] = {}

    def start(self, seq_after: int) -> None:
        self.seq = max(self.seq, seq_after)
        self._stop.clear()
        self.samples = {"healthz": [], "other_user_request": []}
        self.clients.ask({"cmd": "drain"})
        headers = {"Authorization": f"Bearer {self.reader_token}"}
        self._threads = [
            threading.Thread(target=self._http, args=("healthz", "/healthz", {}), daemon=True),
            threading.Thread(
                target=self._http, args=("other_user_request", "/api/tasks", headers), daemon=True
            ),
            threading.Thread(target=self._publish, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        for thread in self._threads:
            thread.join(REQUEST_TIMEOUT + 5)
        # Events the node still holds count late, not lost, as long as they arrive soon after.
        events: list[Any] = []
        deadline = time.monotonic() + 5
        while len(events) < self._published and time.monotonic() < deadline:
            time.sleep(0.1)
            events += self.clients.ask({"cmd": "drain"})["events"]
        live = [recv - ts for recv, ts, *_ in events]
        result = {name: latency_summary(values) for name, values in self.samples.items()}
        result["live_event"] = {**latency_summary(live), "lost": self._published - len(live)}
        return result

    def _http(self, name: str, path: str, headers: dict[str, str]) -> None:
        with requests.Session() as session:
            while not self._stop.is_set():
                start = time.perf_counter()
                r = session.get(self.web.url + path, headers=headers, timeout=REQUEST_TIMEOUT)
                r.raise_for_status()
                self.samples[name].append(time.perf_counter() - start)
                self._stop.wait(PROBE_PAUSE)

    def _publish(self) -> None:
        self._published = 0
        while not self._stop.is_set():
            self.seq += 1
            message = ChannelMessage(self.listener, TASK_PROGRESS, progress_payload(self.listener, self.seq))
            self.redis.publish(self.channel, encode(message))
            self._published += 1
            self._stop.wait(PROBE_PAUSE)

    def close(self) -> None:
        self.redis.close()


@contextlib.contextmanager
def _loop(clients: int, request: Callable[[requests.Session], requests.Response]) -> Iterator[dict[str, Any]]:
    """``clients`` threads sending ``request`` back to back until the block ends; counts by status."""
    stop = threading.Event()
    counts: dict[str, Any] = {"requests": 0, "statuses": {}, "latencies": []}
    lock = threading.Lock()

    def run() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                start = time.perf_counter()
                try:
                    status = str(request(session).status_code)
                except requests.RequestException as exc:
                    status = type(exc).__name__
                with lock:
                    counts["requests"] += 1
                    counts["statuses"][status] = counts["statuses"].get(status, 0) + 1
                    counts["latencies"].append(time.perf_counter() - start)

    threads = [threading.Thread(target=run, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    try:
        yield counts
    finally:
        stop.set()
        for thread in threads:
            thread.join(REQUEST_TIMEOUT + 5)


class Lock:
    """Another connection holds the database's lock from ``__init__`` until ``release``."""

    def __init__(self, database_url: str, user_id: int) -> None:
        self._engine = None
        if database_url.startswith("sqlite"):
            self._conn: Any = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
            self._conn.execute("BEGIN IMMEDIATE")
            self.what = "SQLite write lock (BEGIN IMMEDIATE, another process)"
        else:
            self._engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
            self._conn = self._engine.connect()
            self._conn.execute(sa.text("SELECT id FROM users WHERE id = :id FOR UPDATE"), {"id": user_id})
            self.what = "PostgreSQL row lock (SELECT ... FOR UPDATE on one user)"

    def release(self) -> None:
        if self._conn is None:
            return
        self._conn.rollback() if self._engine is not None else self._conn.execute("ROLLBACK")
        self._conn.close()
        self._conn = None
        if self._engine is not None:
            self._engine.dispose()


def _phase(
    bench: Bench,
    probes: Probes,
    listener: int,
    seconds: float,
    load: Any = None,
    lock: Lock | None = None,
) -> dict[str, Any]:
    probes.start(bench.stack.last_seqs([listener])[listener])
    with load or contextlib.nullcontext() as counts:
        time.sleep(seconds)
        # The lock goes first: what waits for it (and the probes stuck behind that) can then end.
        if lock is not None:
            lock.release()
        result = probes.stop()
    if counts is not None:
        result["load"] = {
            "requests": counts["requests"],
            "statuses": counts["statuses"],
            **latency_summary(counts["latencies"]),
        }
    return result


def run(bench: Bench) -> dict[str, Any]:
    idle_seconds, brute_seconds = (1.0, 2.0) if bench.quick else (3.0, 5.0)
    lock_seconds = 4.0 if bench.quick else LOCK_SECONDS
    reader, listener, locked = bench.stack.ensure_users(3)
    web = bench.stack.start_web("eventlet", name="web-blocking", env={"TRUSTED_PROXIES": "1"})
    clients = bench.stack.child("sioclients-blocking", [PYTHON, "-m", "bench.sioclients"], commands=True)
    probes = None
    try:
        if clients.ask({"cmd": "connect", "url": web.url, "tokens": [list(listener)]})["connected"] != 1:
            raise RuntimeError("the listening client did not connect")
        probes = Probes(web, clients, bench.stack.redis_url, bench.stack.channel, reader, listener[0])
        url = web.url
        reader_headers = {"Authorization": f"Bearer {reader[1]}"}
        phases: dict[str, Any] = {}
        phases["idle"] = _phase(bench, probes, listener[0], idle_seconds)
        with _loop(
            RATE_CLIENTS, lambda s: s.get(f"{url}/api/tasks", headers=reader_headers, timeout=30)
        ) as rate:
            time.sleep(idle_seconds)
            rate_seconds = idle_seconds
        request_rate = {"clients": RATE_CLIENTS, **latency_summary(rate["latencies"])}
        request_rate["per_s"] = rate["requests"] / rate_seconds
        phases["brute_force"] = _phase(
            bench, probes, listener[0], brute_seconds, _loop(BRUTE_FORCE_CLIENTS, guess_request(url))
        )
        right = (_username(bench, locked[0]), PASSWORD)
        lock = Lock(bench.stack.database_url, locked[0])
        try:
            load = _loop(LOCK_WAITERS, _token_request(url, right))
            phases["lock"] = _phase(bench, probes, listener[0], lock_seconds, load, lock)
        finally:
            lock.release()
        phases["lock"]["what"] = lock.what
    finally:
        if probes is not None:
            probes.close()
        clients.ask({"cmd": "close"})
        bench.stack.stop(clients)
        bench.stack.stop(web)
    idle = phases["idle"]
    for name, phase in phases.items():
        for probe in ("healthz", "other_user_request", "live_event"):
            phase[probe]["p50_vs_idle"] = phase[probe]["p50_ms"] / idle[probe]["p50_ms"]
            phase[probe]["max_vs_idle"] = phase[probe]["max_ms"] / idle[probe]["p50_ms"]
        bench.log(
            f"  {name}: healthz p50 {phase['healthz']['p50_ms']:.1f} / max {phase['healthz']['max_ms']:.0f} ms, "
            f"other user's request p50 {phase['other_user_request']['p50_ms']:.1f} ms, "
            f"live event p50 {phase['live_event']['p50_ms']:.1f} / max {phase['live_event']['max_ms']:.0f} ms"
        )
    return {
        "async_mode": "eventlet",
        "lock_seconds": lock_seconds,
        "brute_force_clients": BRUTE_FORCE_CLIENTS,
        "lock_waiters": LOCK_WAITERS,
        "request_rate": request_rate,
        "phases": phases,
    }


def guess_request(url: str) -> Callable[[requests.Session], requests.Response]:
    """A guess at a new unknown name from a new address each call (``X-Forwarded-For``: the node
    must trust one proxy hop), as a botnet spreads its guesses past the rate limits; an unknown
    name costs the node the same hash as a wrong password."""
    guesses = itertools.count()

    def request(session: requests.Session) -> requests.Response:
        n = next(guesses)
        return session.post(
            f"{url}/api/tokens",
            auth=(f"guess{n}", "wrong password"),
            headers={"X-Forwarded-For": f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"},
            timeout=REQUEST_TIMEOUT,
        )

    return request


def _token_request(url: str, auth: tuple[str, str]) -> Callable[[requests.Session], requests.Response]:
    def request(session: requests.Session) -> requests.Response:
        return session.post(f"{url}/api/tokens", auth=auth, timeout=REQUEST_TIMEOUT)

    return request


def _username(bench: Bench, user_id: int) -> str:
    """Stack.ensure_users names its users bench0, bench1, ... in id order."""
    return f"bench{list(bench.stack.tokens).index(user_id)}"


def show(result: dict[str, Any]) -> str:
    rows = []
    for name, phase in result["phases"].items():
        label = phase.get("what", name) if name == "lock" else name.replace("_", " ")
        for probe in ("healthz", "other_user_request", "live_event"):
            p = phase[probe]
            rows.append(
                [label, probe.replace("_", " "), p["p50_ms"], p["max_ms"], p["p50_vs_idle"], p["samples"]]
            )
            label = ""
    rate = result["request_rate"]
    text = table(
        f"blocking: one eventlet web process while {result['brute_force_clients']} clients brute-force "
        f"/api/tokens, or a lock is held {result['lock_seconds']:.0f} s",
        ["phase", "probe", "p50 ms", "max ms", "p50 / idle", "samples"],
        rows,
    )
    return text + (
        f"\nGET /api/tasks, {rate['clients']} clients back to back: {rate['per_s']:.0f}/s, "
        f"p50 {rate['p50_ms']:.2f} ms, p99 {rate['p99_ms']:.2f} ms"
    )
