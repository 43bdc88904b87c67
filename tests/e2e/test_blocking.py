"""A web node stays live while its requests wait: on password hashes, on a lock another process holds.

Real ``python run.py`` (eventlet as shipped, and gevent), real HTTP and Socket.IO clients. While another
connection holds the database's lock for 15 s (SQLite: the write lock, from another process;
PostgreSQL: one user's row) and that user's requests wait for it, and 8 clients send wrong
passwords to ``/api/tokens`` back to back, the node still answers ``/healthz`` at once, serves
another user's request, and pushes a live event to an unrelated user's socket. The bounds are
generous (idle, each takes a few milliseconds); a node whose hub blocks takes seconds.
"""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Iterator

import pytest
import requests
import socketio
import sqlalchemy as sa

from app.broker import Keys
from app.sansio.events import TASK_PROGRESS, ChannelMessage, encode
from bench.payloads import progress_payload
from bench.sections.blocking import guess_request

pytestmark = pytest.mark.e2e

LOCK_SECONDS = 15.0
BRUTE_FORCE_CLIENTS = 8
PROMPT = 1.0  # seconds: /healthz and the other user's request, each time
EVENT_PROMPT = 2.0  # seconds from publish to the unrelated socket


def _user(base_url: str, username: str) -> tuple[int, str]:
    password = "correct horse"
    r = requests.post(
        f"{base_url}/api/users",
        json={"username": username, "email": f"{username}@example.com", "password": password},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    token = requests.post(f"{base_url}/api/tokens", auth=(username, password), timeout=30)
    assert token.status_code == 201, token.text
    return r.json()["id"], token.json()["token"]


@contextlib.contextmanager
def _lock_held(database_url: str, user_id: int) -> Iterator[None]:
    """Another connection holds the lock this database has for as long as the block runs."""
    if database_url.startswith("sqlite"):
        conn = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield
        finally:
            conn.close()
        return
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT id FROM users WHERE id = :id FOR UPDATE"), {"id": user_id})
            yield
            conn.rollback()
    finally:
        engine.dispose()


@contextlib.contextmanager
def _back_to_back(clients: int, send: object) -> Iterator[list[int]]:
    """``clients`` threads calling ``send`` until the block ends; the status codes they got."""
    stop = threading.Event()
    statuses: list[int] = []

    def run() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                with contextlib.suppress(requests.RequestException):
                    statuses.append(send(session).status_code)  # type: ignore[operator]

    threads = [threading.Thread(target=run, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    try:
        yield statuses
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)


@pytest.fixture
def live_stack_env() -> dict[str, str]:
    # Behind one proxy hop, so that the guesser can come from many addresses (guess_request): the
    # per-address and per-account limits then refuse nothing, and every guess costs a hash.
    return {"TRUSTED_PROXIES": "1"}


# eventlet as shipped; gevent takes the same path (its thread pool, psycopg's own gevent support).
@pytest.mark.parametrize("live_stack", ["eventlet", "gevent"], indirect=True)
def test_node_stays_live_while_a_lock_is_held_elsewhere_and_passwords_are_brute_forced(
    live_stack, database_url, redis
):
    base = live_stack.base_url
    locked_id, _ = _user(base, "locked")
    _reader_id, reader_token = _user(base, "reader")
    _listener_id, listener_token = _user(base, "listener")

    arrivals: queue.Queue[tuple[float, dict]] = queue.Queue()
    welcome: queue.Queue[dict] = queue.Queue()
    listener = socketio.Client(reconnection=False)
    listener.on("welcome", welcome.put)
    listener.on("task_progress", lambda data: arrivals.put((time.time(), data)))
    listener.connect(base, auth={"token": listener_token}, transports=["websocket"], wait_timeout=10)
    hello = welcome.get(timeout=10)
    channel = Keys.of(live_stack.env).channel

    slowest = {"healthz": 0.0, "another user's request": 0.0, "live event": 0.0}
    rounds = 0
    try:
        with (
            # The locked user's own requests need the lock: a new token row (SQLite's write lock;
            # on PostgreSQL its foreign key waits for the locked user's row).
            _back_to_back(
                2, lambda s: s.post(f"{base}/api/tokens", auth=("locked", "correct horse"), timeout=60)
            ),
            _back_to_back(BRUTE_FORCE_CLIENTS, guess_request(base)) as refused,
            # Innermost, so that it is released before the clients waiting for it are joined.
            _lock_held(database_url, locked_id),
        ):
            deadline = time.monotonic() + LOCK_SECONDS
            seq = hello["last_seq"]
            while time.monotonic() < deadline:
                start = time.perf_counter()
                assert requests.get(f"{base}/healthz", timeout=60).ok
                slowest["healthz"] = max(slowest["healthz"], time.perf_counter() - start)

                start = time.perf_counter()
                r = requests.get(
                    f"{base}/api/tasks", headers={"Authorization": f"Bearer {reader_token}"}, timeout=60
                )
                assert r.status_code == 200, r.text
                slowest["another user's request"] = max(
                    slowest["another user's request"], time.perf_counter() - start
                )

                seq += 1
                payload = progress_payload(hello["user_id"], seq)
                redis.publish(channel, encode(ChannelMessage(hello["user_id"], TASK_PROGRESS, payload)))
                try:
                    received_at, data = arrivals.get(timeout=EVENT_PROMPT * 5)
                except queue.Empty:
                    received_at, data = float("inf"), {"seq": seq}
                assert data["seq"] == seq
                slowest["live event"] = max(slowest["live event"], received_at - payload["ts"])
                # Fail at the first slow answer: a blocked node would otherwise hold the test for minutes.
                assert (
                    slowest["healthz"] < PROMPT
                    and slowest["another user's request"] < PROMPT
                    and slowest["live event"] < EVENT_PROMPT
                ), f"slowest so far, seconds: {slowest}"
                rounds += 1
                time.sleep(0.2)
    finally:
        listener.disconnect()

    assert refused.count(401) >= BRUTE_FORCE_CLIENTS, "the brute force ran"
    assert 429 not in refused, "every guess cost a hash"
    assert rounds >= 10, f"only {rounds} rounds in {LOCK_SECONDS} s: {slowest}"
