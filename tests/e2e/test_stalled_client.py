"""A client that stops reading: its volatile ticks are skipped, its stored events never, others keep up.

Once it has read nothing for STALLED_SOCKET_TIMEOUT, its socket is closed, and it catches up
from the database.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit

import pytest
import requests
import sqlalchemy as sa
import websocket

from app.broker import Keys
from app.models import Notification, User
from app.sansio.events import TASK_PROGRESS, ChannelMessage, encode
from app.sansio.protocol import ADMIN_TASK
from tests.support import ROOT

pytestmark = pytest.mark.e2e

TICKS_PER_STORE = 9
STALLED_MESSAGES = 3_000
READER_MESSAGES = 300


class RawClient:
    """Socket.IO over a bare Engine.IO v4 WebSocket that reads only when told.

    A stalling client gets a tiny receive buffer: with 4 KiB, what it does not read backs up
    into the node after a few hundred KiB, instead of into this machine's kernel. A reading
    client keeps the kernel's own: one as small as that, read by a thread that waits for the
    GIL, often closes its window, and the node's writes then wait for the kernel's
    zero-window probes (seconds apart), whatever the node does.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        event: str = TASK_PROGRESS,
        last_seq: int | None = None,
        *,
        stalling: bool = False,
    ) -> None:
        self.event = event
        host = urlsplit(base_url).netloc
        self.ws = websocket.create_connection(
            f"ws://{host}/socket.io/?EIO=4&transport=websocket",
            sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),) if stalling else (),
            timeout=10,
        )
        assert self.ws.recv().startswith("0"), "Engine.IO open packet"
        auth = {"token": token} if last_seq is None else {"token": token, "last_seq": last_seq}
        self.ws.send("40" + json.dumps(auth))
        self.events: list[dict] = []
        self._next(lambda packet: packet.startswith("40"), 10)

    def read_until(self, done, timeout: float) -> None:
        # A resume's replay arrives before the connect is acknowledged: maybe all of it already.
        if not done(self.events):
            self._next(lambda _packet: done(self.events), timeout)

    def read_until_closed(self, timeout: float) -> None:
        """Read until the server ends the connection."""
        with contextlib.suppress(websocket.WebSocketConnectionClosedException):
            self._next(lambda packet: packet == "", timeout)

    def _next(self, done, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            packet = self.ws.recv()
            if packet == "2":
                self.ws.send("3")
            elif packet.startswith("42"):
                event, data = json.loads(packet[2:])
                if event == self.event:
                    self.events.append(data)
            elif packet.startswith("44"):
                raise AssertionError(f"connection refused: {packet}")
            if done(packet):
                return
        raise AssertionError(f"not done within {timeout} s; {len(self.events)} events read")

    def close(self) -> None:
        self.ws.close()
        # close() leaves the socket open when the server ended the connection first.
        self.ws.shutdown()


def _user(base_url: str, name: str) -> tuple[int, str]:
    password = "correct horse"
    r = requests.post(
        f"{base_url}/api/users",
        json={"username": name, "email": f"{name}@example.com", "password": password},
        timeout=10,
    )
    assert r.status_code == 201, r.text
    user_id = r.json()["id"]
    r = requests.post(f"{base_url}/api/tokens", auth=(name, password), timeout=10)
    assert r.status_code == 201, r.text
    return user_id, r.json()["token"]


def _messages(user_id: int, count: int, size: int) -> list[tuple[bool, int, bytes]]:
    """What a job publishes while reporting fast: a stored event, then ticks carrying its seq."""
    out, seq = [], 0
    for i in range(count):
        volatile = i % (TICKS_PER_STORE + 1) != 0 and i != count - 1
        seq += not volatile
        data = {
            "task_id": f"task-of-{user_id}",
            "status": "running",
            "step": i,
            "total": count,
            "message": "x" * size,
            "seq": seq,
            "volatile": volatile,
            "ts": time.time(),
        }
        out.append((volatile, seq, encode(ChannelMessage(user_id, TASK_PROGRESS, data))))
    return out


@pytest.fixture
def live_stack_env(request: pytest.FixtureRequest) -> dict[str, str]:
    return dict(request.param)


CAPPED = {"MAX_SOCKET_BACKLOG": "20", "STALLED_SOCKET_TIMEOUT": "0"}
UNCAPPED = {"MAX_SOCKET_BACKLOG": "0", "STALLED_SOCKET_TIMEOUT": "0"}
STALLED_AFTER = 2.0


@pytest.mark.parametrize(
    ("live_stack_env", "role"),
    [(CAPPED, "owner"), (UNCAPPED, "owner"), (CAPPED, "admin")],
    ids=["capped", "uncapped", "capped-admin"],
    indirect=["live_stack_env"],
)
def test_a_stalled_client_loses_ticks_only_and_does_not_hold_up_the_others(live_stack, live_stack_env, role):
    capped = live_stack_env["MAX_SOCKET_BACKLOG"] != "0"
    stalled_id, stalled_token = _user(live_stack.base_url, "stalled")
    reader_id, reader_token = _user(live_stack.base_url, "reader")
    if role == "admin":
        # The stalled client is an admin watching every user's events, here those of "owner".
        subprocess.run(
            [sys.executable, "-m", "flask", "make-admin", "stalled"],
            cwd=ROOT,
            env=live_stack.env,
            check=True,
            capture_output=True,
        )
        stalled_id, _ = _user(live_stack.base_url, "owner")
    stalled = RawClient(
        live_stack.base_url, stalled_token, ADMIN_TASK if role == "admin" else TASK_PROGRESS, stalling=True
    )
    reader = RawClient(live_stack.base_url, reader_token)
    # 15 MB for the stalled client: far more than the kernel's socket buffers (4 MiB at most here).
    for_stalled = _messages(stalled_id, STALLED_MESSAGES, 5_000)
    for_reader = _messages(reader_id, READER_MESSAGES, 500)
    channel = Keys.of(live_stack.env).channel
    reader_done = threading.Event()

    def read() -> None:
        reader.read_until(lambda events: len(events) == READER_MESSAGES, 30)
        reader_done.set()

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    try:
        # Interleaved, as jobs of two users publish; the stalled client reads nothing meanwhile.
        pipe = live_stack.redis.pipeline(transaction=False)
        every = STALLED_MESSAGES // READER_MESSAGES
        for i, (_volatile, _seq, body) in enumerate(for_stalled):
            pipe.publish(channel, body)
            if i % every == 0 and i // every < READER_MESSAGES:
                pipe.publish(channel, for_reader[i // every][2])
            if i % 100 == 99:
                pipe.execute()
        pipe.execute()

        assert reader_done.wait(10), f"the reader got {len(reader.events)} of {READER_MESSAGES} events"
        assert [e["step"] for e in reader.events] == list(range(READER_MESSAGES))

        last_seq = for_stalled[-1][1]
        stalled.read_until(lambda events: events and events[-1]["seq"] == last_seq, 60)
    finally:
        thread.join(5)
        stalled.close()
        reader.close()

    # An admin also sees the reader's events: keep those of the flooded user.
    events = [e for e in stalled.events if e.get("user_id", stalled_id) == stalled_id]
    stored = [seq for volatile, seq, _body in for_stalled if not volatile]
    got_stored = [e["seq"] for e in events if not e["volatile"]]
    assert got_stored == stored, "every stored event arrives, in order, once"
    ticks = [e for e in events if e["volatile"]]
    published_ticks = len(for_stalled) - len(stored)
    steps = [e["step"] for e in events]
    assert steps == sorted(steps), "what arrives, arrives in order"
    if capped:
        assert len(ticks) < published_ticks // 2, f"{len(ticks)} of {published_ticks} ticks queued"
    else:
        assert len(ticks) == published_ticks


def _store(database_url: str, user_id: int, events: list[dict]) -> None:
    """What the jobs' reports stored before publishing: the notifications a resume replays."""
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.insert(Notification.__table__),
                [{"user_id": user_id, "seq": e["seq"], "name": TASK_PROGRESS, "payload": e} for e in events],
            )
            conn.execute(
                sa.update(User.__table__).where(User.id == user_id).values(last_seq=events[-1]["seq"])
            )
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "live_stack_env",
    [{"MAX_SOCKET_BACKLOG": "20", "STALLED_SOCKET_TIMEOUT": str(STALLED_AFTER), "REPLAY_LIMIT": "5000"}],
    indirect=True,
)
def test_a_client_that_reads_nothing_for_a_while_is_closed_and_catches_up_from_the_database(
    live_stack, live_stack_env
):
    stalled_id, stalled_token = _user(live_stack.base_url, "stalled")
    reader_id, reader_token = _user(live_stack.base_url, "reader")
    stalled = RawClient(live_stack.base_url, stalled_token, stalling=True)
    reader = RawClient(live_stack.base_url, reader_token)
    # Stored events only, none of which may be skipped: 7.5 MB, past what the kernel buffers.
    count = 1_500
    flood = []
    for seq in range(1, count + 1):
        data = {"task_id": "t", "status": "running", "step": seq, "total": count, "message": "x" * 5_000}
        flood.append({**data, "seq": seq, "volatile": False, "ts": time.time()})
    _store(live_stack.env["DATABASE_URL"], stalled_id, flood)
    for_reader = _messages(reader_id, READER_MESSAGES, 500)
    channel = Keys.of(live_stack.env).channel

    def publish(data: dict) -> None:
        live_stack.redis.publish(channel, encode(ChannelMessage(stalled_id, TASK_PROGRESS, data)))

    try:
        pipe = live_stack.redis.pipeline(transaction=False)
        every = (count - 1) // READER_MESSAGES
        for i, data in enumerate(flood[:-1]):
            pipe.publish(channel, encode(ChannelMessage(stalled_id, TASK_PROGRESS, data)))
            if i % every == 0 and i // every < READER_MESSAGES:
                pipe.publish(channel, for_reader[i // every][2])
            if i % 100 == 99:
                pipe.execute()
        pipe.execute()
        reader.read_until(lambda events: len(events) == READER_MESSAGES, 30)
        assert [e["step"] for e in reader.events] == list(range(READER_MESSAGES)), "the reader kept up"

        # Long enough without reading: the node closes the socket at its next event.
        time.sleep(STALLED_AFTER + 0.5)
        publish(flood[-1])
        # The client reads again: what the node had written, then the end of the connection.
        stalled.read_until_closed(60)
        first = [e["seq"] for e in stalled.events]
        assert 0 < len(first) < count, f"closed after {len(first)} of {count} events"
        assert first == list(range(1, len(first) + 1))

        again = RawClient(live_stack.base_url, stalled_token, last_seq=first[-1])
        again.read_until(lambda events: events and events[-1]["seq"] == count, 30)
        again.close()
    finally:
        stalled.close()
        reader.close()
    assert first + [e["seq"] for e in again.events] == list(range(1, count + 1)), (
        "nothing lost, nothing twice"
    )
