"""A web node at its WebSocket limit (MAX_CONNECTIONS): new WebSockets are told to come back
later, everything else it serves goes on."""

from __future__ import annotations

import struct

import pytest
import requests
import socketio
import websocket

from tests.e2e.test_engineio_sockets import RawSocket, websocket_url
from tests.support import wait_for

pytestmark = pytest.mark.e2e

LIMIT = 3


@pytest.fixture
def live_stack_env() -> dict[str, str]:
    return {"MAX_CONNECTIONS": str(LIMIT)}


def _open(base_url: str) -> tuple[websocket.WebSocket | None, bytes | None]:
    """A new WebSocket that the node took, or the close frame's code and reason it sent."""
    ws = websocket.create_connection(websocket_url(base_url), timeout=10)
    opcode, data = ws.recv_data()
    if opcode == websocket.ABNF.OPCODE_CLOSE:
        ws.shutdown()
        return None, data
    assert data.startswith(b"0{"), data  # Engine.IO's open packet
    return ws, None


def test_a_full_node_turns_new_websockets_away_and_takes_them_again_when_one_closes(live_stack):
    sockets = [RawSocket(live_stack.base_url, live_stack.create_user(f"user{i}")) for i in range(LIMIT)]
    try:
        turned_away, refusal = _open(live_stack.base_url)
        assert turned_away is None, "a WebSocket over the limit was opened"
        assert struct.unpack("!H", refusal[:2])[0] == 1013  # try again later
        assert refusal[2:] == b"server full"

        # HTTP goes on: the API, and a client on long-polling.
        assert requests.get(f"{live_stack.base_url}/healthz", timeout=5).status_code == 200
        http = requests.Session()
        polling = socketio.Client(reconnection=False, http_session=http)
        polling.connect(
            live_stack.base_url,
            auth={"token": live_stack.create_user("poller")},
            transports=["polling"],
            wait_timeout=10,
        )
        try:
            assert polling.connected
        finally:
            polling.disconnect()
            http.close()

        sockets.pop().close()
        taken = wait_for(lambda: _open(live_stack.base_url)[0], 10, "a place for a new WebSocket")
        try:
            assert _open(live_stack.base_url)[0] is None, "full again"
        finally:
            taken.close()
    finally:
        for raw in sockets:
            raw.close()
