"""A hostile client on a real node: what it sends is bounded (docs/protocol.md, "Limits").

Raw WebSocket and long-polling clients, so that they can send what no Socket.IO client would.
"""

from __future__ import annotations

import contextlib
import json
import time

import pytest
import requests
import websocket

from app.sansio.guard import EVENT_BURST, RESUME_INTERVAL
from tests.e2e.test_engineio_sockets import RawSocket, websocket_url
from tests.e2e.test_stalled_client import RawClient, _store, _user
from tests.support import wait_for

pytestmark = pytest.mark.e2e

STORED = 500


@pytest.fixture
def live_stack_env(request: pytest.FixtureRequest) -> dict[str, str]:
    return dict(getattr(request, "param", {}))


def _stored_events(count: int, size: int = 100) -> list[dict]:
    return [
        {
            "task_id": "t",
            "status": "running",
            "step": seq,
            "total": count,
            "message": "x" * size,
            "seq": seq,
            "volatile": False,
            "ts": time.time(),
        }
        for seq in range(1, count + 1)
    ]


def _replayed(raw: RawSocket) -> int:
    return sum(p.startswith('42["task_progress"') for p in raw.packets)


def _events(raw: RawSocket, name: str) -> list[dict]:
    prefix = f'42["{name}"'
    return [json.loads(p[2:])[1] for p in raw.packets if p.startswith(prefix)]


def test_a_burst_of_resumes_replays_once_and_the_flood_is_disconnected_with_a_reason(live_stack):
    user_id, token = _user(live_stack.base_url, "alice")
    _store(live_stack.env["DATABASE_URL"], user_id, _stored_events(STORED))
    raw = RawSocket(live_stack.base_url, token)
    try:
        # 200 resumes in one go: 5.4 KB that asked for 200 replays of every stored event.
        with contextlib.suppress(websocket.WebSocketConnectionClosedException, ConnectionError):
            for _ in range(200):
                raw.ws.send('42["resume",{"last_seq":0}]')
        ended = raw.listen(30, answer_pings=True)
    finally:
        raw.close()
    assert ended is not None, "the node kept a socket that sent 200 events at once"
    assert _replayed(raw) <= STORED, f"{_replayed(raw)} events replayed for {STORED} stored"
    assert _events(raw, "closing") == [{"reason": "too_many_events"}]
    refusals = _events(raw, "protocol_error")
    assert refusals and all(r["event"] == "resume" for r in refusals)
    assert len(refusals) < EVENT_BURST


def test_a_flood_of_unknown_events_is_disconnected_with_a_reason(live_stack):
    raw = RawSocket(live_stack.base_url, live_stack.create_user("alice"))
    try:
        started = time.monotonic()
        with contextlib.suppress(websocket.WebSocketConnectionClosedException, ConnectionError):
            for i in range(5_000):
                raw.ws.send(f'42["anything",{{"n":{i}}}]')
        ended = raw.listen(10, answer_pings=True)
    finally:
        raw.close()
    assert ended is not None, "the node took 5,000 unknown events and kept the socket"
    assert time.monotonic() - started < 10
    assert _events(raw, "closing") == [{"reason": "too_many_events"}]


def test_a_client_that_keeps_its_resumes_within_the_limits_does_not_hit_them(live_stack):
    user_id, token = _user(live_stack.base_url, "alice")
    _store(live_stack.env["DATABASE_URL"], user_id, _stored_events(20))
    raw = RawSocket(live_stack.base_url, token)
    try:
        for last_seq in (15, 10):
            raw.ws.send("42" + json.dumps(["resume", {"last_seq": last_seq}]))
            assert raw.listen(2.2, answer_pings=True) is None
    finally:
        raw.close()
    assert [e["seq"] for e in _events(raw, "task_progress")][-15:] == [*range(16, 21), *range(11, 21)]
    assert not _events(raw, "protocol_error")
    assert not _events(raw, "closing")


DEEP = 5_000  # far past what the JSON decoder's recursion takes, and within MAX_MESSAGE_BYTES
MALFORMED = {
    "empty frame": "",
    "not a packet type": "x",
    "NUL and 0xff": "\x00\xff",
    "binary frame": b"\x00\xff",
    "unknown Engine.IO packet": "9",
    "Engine.IO noop from a client": "6",
    "Socket.IO packet that does not parse": '42["resume",',
    "unknown Socket.IO packet type": "49",
    "event that is not a list": '42{"resume":1}',
    "binary Socket.IO event": '451-["resume",{"_placeholder":true,"num":0}]',
    "empty Engine.IO message": "4",
    "deeply nested Engine.IO message": "4" + "[" * DEEP + "]" * DEEP,
    "deeply nested event": '42["resume",' + '{"a":' * DEEP + "1" + "}" * DEEP + "]",
}


@pytest.mark.parametrize("live_stack_env", [{"MAX_CONNECTIONS": "2"}], indirect=True)
def test_every_malformed_frame_closes_its_websocket_at_once_and_frees_its_place(live_stack):
    token = live_stack.create_user("alice")
    # One of the node's two places is taken throughout, by a client that sends nothing wrong.
    witness = RawSocket(live_stack.base_url, live_stack.create_user("bob"))
    try:
        for what, frame in MALFORMED.items():
            # This socket opens only if the one before it freed its place.
            raw = RawSocket(live_stack.base_url, token)
            try:
                started = time.monotonic()
                if isinstance(frame, bytes):
                    raw.ws.send_binary(frame)
                else:
                    raw.ws.send(frame)
                ended = raw.listen(10, answer_pings=True)
            finally:
                raw.close()
            took = time.monotonic() - started
            assert ended is not None, f"{what}: the socket stayed open"
            assert took < 3, f"{what}: closed after {took:.1f} s"
        assert witness.listen(0.5, answer_pings=True) is None, "the other client is still served"
    finally:
        witness.close()


def test_a_deeply_nested_connect_is_refused_at_once(live_stack):
    ws = websocket.create_connection(websocket_url(live_stack.base_url), timeout=10)
    try:
        assert ws.recv().startswith("0{")
        started = time.monotonic()
        ws.send("40" + '{"token":' * DEEP + '"x"' + "}" * DEEP)
        ws.settimeout(10)
        with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
            while True:
                opcode, _data = ws.recv_data()
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    raise websocket.WebSocketConnectionClosedException("close frame")
        assert time.monotonic() - started < 3
    finally:
        ws.shutdown()


def _polling(base_url: str, token: str) -> tuple[requests.Session, str]:
    http = requests.Session()
    url = f"{base_url}/socket.io/?EIO=4&transport=polling"
    opened = http.get(url, timeout=10)
    assert opened.status_code == 200 and opened.text.startswith("0{"), opened.text
    sid = json.loads(opened.text[1:])["sid"]
    r = http.post(f"{url}&sid={sid}", data="40" + json.dumps({"token": token}), timeout=10)
    assert r.status_code == 200, r.text
    assert "\x1e40{" in http.get(f"{url}&sid={sid}", timeout=10).text, "connected"
    return http, f"{url}&sid={sid}"


@pytest.mark.parametrize(
    "body",
    ["x", "4" + "[" * DEEP, "42[", "42" + '{"a":' * DEEP + "}" * DEEP, "3\x1ex"],
    ids=["not a packet", "deep Engine.IO", "bad Socket.IO", "deep Socket.IO", "second packet bad"],
)
def test_a_malformed_long_polling_request_is_refused_and_ends_the_session(live_stack, body):
    http, url = _polling(live_stack.base_url, live_stack.create_user("alice"))
    try:
        started = time.monotonic()
        refused = http.post(url, data=body.encode(), timeout=10)
        # The Engine.IO session is over: the next poll is refused at once, not held for a ping.
        # (A Socket.IO packet is taken in after its request is answered, so that one may pass.)
        wait_for(lambda: http.get(url, timeout=3).status_code == 400, 3, "the session to end")
    finally:
        http.close()
    assert refused.status_code == (200 if body.startswith("42[") else 400), refused.text
    assert time.monotonic() - started < 3


NOT_READING = {"MAX_SOCKET_BACKLOG": "20", "STALLED_SOCKET_TIMEOUT": "1", "REPLAY_LIMIT": "5000"}


@pytest.mark.parametrize("live_stack_env", [NOT_READING], indirect=True)
def test_a_client_that_does_not_read_its_replays_is_closed_and_its_queue_dropped(live_stack):
    user_id, token = _user(live_stack.base_url, "stalled")
    count = 1_500
    # 7.5 MB per replay, past what the kernel's socket buffers take.
    _store(live_stack.env["DATABASE_URL"], user_id, _stored_events(count, 5_000))
    # Connected without last_seq: a connect's replay arrives before its acknowledgement.
    stalled = RawClient(live_stack.base_url, token, stalling=True)
    try:
        # Within the resume limit, and reading nothing.
        for _ in range(4):
            stalled.ws.send('42["resume",{"last_seq":0}]')
            # Pacing, not waiting: a client keeping to the resume limit.
            time.sleep(RESUME_INTERVAL * 1.1)
        # Its receive window has been shut for seconds: the node's kernel probes it again only
        # after a backoff of as long.
        stalled.ws.settimeout(30)
        stalled.read_until_closed(90)
    finally:
        stalled.close()
    # What the kernel had taken, and nothing of the later resumes: the node dropped the rest.
    assert len(stalled.events) < count, f"{len(stalled.events)} events read after the stall"
