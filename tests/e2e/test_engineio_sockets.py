"""The node's Engine.IO sockets (app/lean_socket.py): heartbeat, upgrade, closing, on a real node.

The node runs no green thread for an idle socket: its reads wait in eventlet's hub and its
writes and pings start green threads only when there is something to send. These are the
behaviours python-engineio's own threads provided, checked from the client's side.
"""

from __future__ import annotations

import json
import queue
import time

import pytest
import requests
import socketio
import websocket

from tests.support import wait_for

pytestmark = pytest.mark.e2e

PING_INTERVAL = 1
PING_TIMEOUT = 2


@pytest.fixture
def live_stack_env() -> dict[str, str]:
    return {"PING_INTERVAL": str(PING_INTERVAL), "PING_TIMEOUT": str(PING_TIMEOUT)}


def websocket_url(base_url: str) -> str:
    """The node's Engine.IO endpoint, straight over WebSocket."""
    return base_url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"


class RawSocket:
    """An Engine.IO v4 client at the frame level, so pongs can be withheld."""

    def __init__(self, base_url: str, token: str) -> None:
        self.ws = websocket.create_connection(websocket_url(base_url), timeout=10)
        opened = self.ws.recv()
        assert opened.startswith("0{"), opened
        self.handshake = json.loads(opened[1:])
        self.ws.send("40" + json.dumps({"token": token}))
        self.packets: list[str] = []
        while not any(p.startswith("40{") for p in self.packets):
            self.packets.append(self.ws.recv())

    def listen(self, seconds: float, *, answer_pings: bool) -> str | None:
        """Read for ``seconds``; the reason the connection ended, or None if it is still open."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.ws.settimeout(left)
            try:
                opcode, data = self.ws.recv_data()
            except websocket.WebSocketTimeoutException:
                return None
            except (websocket.WebSocketConnectionClosedException, ConnectionError) as exc:
                return type(exc).__name__
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return "close frame"
            packet = data.decode()
            self.packets.append(packet)
            if packet == "1":
                return "engine.io close packet"
            if packet == "2" and answer_pings:
                self.ws.send("3")
        return None

    def close(self) -> None:
        self.ws.close()
        self.ws.shutdown()  # close() skips the socket when the server closed first


def test_the_server_pings_on_schedule_and_a_client_that_answers_stays_connected(live_stack):
    token = live_stack.create_user("alice")
    raw = RawSocket(live_stack.base_url, token)
    try:
        assert raw.handshake["pingInterval"] == PING_INTERVAL * 1000
        assert raw.listen(4.5, answer_pings=True) is None
        # One ping per interval: 4 in 4.5 s, give or take one for scheduling.
        assert 3 <= raw.packets.count("2") <= 5, raw.packets

        task = live_stack.start_task(token, "example_long_task", steps=1, delay=0)
        wait_for(
            lambda: raw.listen(0.2, answer_pings=True) is None and _finished(raw, task["id"]), 10, "events"
        )
    finally:
        raw.close()


def test_a_client_that_stops_answering_pings_is_disconnected(live_stack):
    raw = RawSocket(live_stack.base_url, live_stack.create_user("alice"))
    try:
        started = time.monotonic()
        ended = raw.listen(20, answer_pings=False)
        assert ended is not None, "the server kept a client that never answered a ping"
        # Dropped after a missed ping's timeout, well before the generous bound above.
        assert time.monotonic() - started < PING_INTERVAL + PING_TIMEOUT + 5
    finally:
        raw.close()


def test_a_client_that_starts_on_long_polling_upgrades_and_receives_its_events(live_stack):
    token = live_stack.create_user("alice")
    events: queue.Queue[dict] = queue.Queue()
    http = requests.Session()  # the polling requests' connections, closed at the end
    sio = socketio.Client(reconnection=False, http_session=http)
    sio.on("task_progress", events.put)
    sio.connect(
        live_stack.base_url, auth={"token": token}, transports=["polling", "websocket"], wait_timeout=10
    )
    try:
        wait_for(lambda: sio.transport() == "websocket", 10, "the upgrade to WebSocket")
        task = live_stack.start_task(token, "example_long_task", steps=3, delay=0.05)
        received = []
        while not received or received[-1]["status"] != "succeeded":
            received.append(events.get(timeout=15))
        assert [e["step"] for e in received if e["task_id"] == task["id"] and e["total"]][-1] == 3
        assert sio.transport() == "websocket"
        # Still alive over several heartbeats after the upgrade.
        time.sleep(3 * PING_INTERVAL)
        assert sio.connected
    finally:
        sio.disconnect()
        http.close()


def test_a_message_that_arrives_in_pieces_is_read_whole_while_others_are_served(live_stack):
    slow = RawSocket(live_stack.base_url, live_stack.create_user("alice"))
    token = live_stack.create_user("bob")
    other = RawSocket(live_stack.base_url, token)
    try:
        frame = websocket.ABNF.create_frame('42["resume",{"last_seq":"soon"}]', websocket.ABNF.OPCODE_TEXT)
        raw_frame = frame.format()
        slow.ws.sock.sendall(raw_frame[:9])  # the header and part of the payload
        # Meanwhile the node serves everyone else.
        task = live_stack.start_task(token, "example_long_task", steps=1, delay=0)
        wait_for(
            lambda: other.listen(0.2, answer_pings=True) is None and _finished(other, task["id"]),
            10,
            "events",
        )
        slow.ws.sock.sendall(raw_frame[9:])
        wait_for(
            lambda: (
                slow.listen(0.2, answer_pings=True) is None
                and any(p.startswith('42["protocol_error"') for p in slow.packets)
            ),
            10,
            "the answer to the message",
        )
        error = next(p for p in slow.packets if p.startswith('42["protocol_error"'))
        assert json.loads(error[2:])[1]["event"] == "resume"
        assert slow.listen(2 * PING_INTERVAL, answer_pings=True) is None, "the socket stays open"
    finally:
        slow.close()
        other.close()


def test_a_client_that_closes_gets_the_closing_handshake(live_stack):
    raw = RawSocket(live_stack.base_url, live_stack.create_user("alice"))
    try:
        raw.ws.send_close()
        assert raw.listen(10, answer_pings=False) == "close frame"
    finally:
        raw.close()


def test_an_offer_of_compression_is_declined(live_stack):
    # Browsers offer permessage-deflate on every WebSocket; accepted, it costs the node a
    # compressor per connection and a compression per event.
    ws = websocket.create_connection(
        websocket_url(live_stack.base_url),
        timeout=10,
        header=["Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"],
    )
    try:
        assert "sec-websocket-extensions" not in {k.lower() for k in ws.getheaders()}
        # websocket-client refuses a compressed frame: the packet arrives as sent.
        assert ws.recv().startswith("0{")
    finally:
        ws.close()


def _finished(raw: RawSocket, task_id: str) -> bool:
    return any(
        p.startswith('42["task_progress"') and task_id in p and '"succeeded"' in p for p in raw.packets
    )
