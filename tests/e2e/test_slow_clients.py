"""Slow HTTP clients against a real node (``python run.py``) over raw sockets: connections that
never finish their request head are closed after the header timeout and cannot starve real
requests; an idle kept-alive connection, or a body that stops coming, after HTTP_IDLE_TIMEOUT;
a body that comes slowly but steadily, a WebSocket and a long-poll, quiet for longer than both
timeouts, go on."""

from __future__ import annotations

import contextlib
import json
import selectors
import socket
import threading
import time
from urllib.parse import urlsplit

import pytest
import requests

from app.http_timeouts import HEADER_TIMEOUT
from tests.e2e.test_live_progress import Listener

pytestmark = pytest.mark.e2e

LIMIT = 50  # MAX_CONNECTIONS: under eventlet, the green threads that serve HTTP requests
IDLE = 3
PING_INTERVAL = 12  # a long-poll waits this long for data: past the header timeout
SLACK = 10.0  # a loaded machine's lateness; the timeouts themselves are asserted from below
HALF_HEADS = LIMIT  # with the tricklers, more slow connections than the node serves at once
TRICKLERS = 10
MODES = ["eventlet", "gevent", "threading"]


@pytest.fixture
def live_stack_env() -> dict[str, str]:
    return {
        "MAX_CONNECTIONS": str(LIMIT),
        "HTTP_IDLE_TIMEOUT": str(IDLE),
        "PING_INTERVAL": str(PING_INTERVAL),
    }


def _address(base_url: str) -> tuple[str, int]:
    url = urlsplit(base_url)
    return url.hostname, url.port


class SlowHeads:
    """Connections that each send part of a request head and never the rest; the tricklers add
    one more byte of a header every second. Records when the node closed each one."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.opened: dict[socket.socket, float] = {}
        self.closed: dict[socket.socket, float] = {}
        self.tricklers: list[socket.socket] = []
        self.answered: bytes | None = None  # the node must never answer a head it never got
        # The tricklers first: under eventlet they take places in the pool, the half heads fill
        # the rest and wait past it in the listen backlog.
        for i in range(TRICKLERS + HALF_HEADS):
            sock = socket.create_connection(address, timeout=10)
            sock.sendall(
                b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + (b"X-Slow: " if i < TRICKLERS else b"")
            )
            self.opened[sock] = time.monotonic()
            if i < TRICKLERS:
                self.tricklers.append(sock)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        selector = selectors.DefaultSelector()
        for sock in self.opened:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        next_byte = time.monotonic() + 1
        while not self._stop.is_set() and len(self.closed) < len(self.opened):
            for key, _ in selector.select(timeout=0.1):
                try:
                    data = key.fileobj.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:  # closed by the node
                    self.closed[key.fileobj] = time.monotonic()
                    selector.unregister(key.fileobj)
                else:
                    self.answered = data
            if time.monotonic() >= next_byte:
                next_byte += 1
                for sock in self.tricklers:
                    if sock not in self.closed:
                        with contextlib.suppress(OSError):  # closed: the selector sees it
                            sock.send(b"a")
        selector.close()

    def wait(self, timeout: float) -> None:
        self._thread.join(timeout)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock in self.opened:
            sock.close()


@pytest.mark.parametrize("live_stack", MODES, indirect=True)
def test_connections_that_never_finish_their_head_are_closed_and_real_requests_go_on(live_stack):
    live_stack.create_user("alice")
    address = _address(live_stack.base_url)
    answers: dict[str, tuple[int | str, float]] = {}

    def request(name: str, method: str, path: str, **kwargs: object) -> None:
        try:
            r = requests.request(
                method, live_stack.base_url + path, timeout=HEADER_TIMEOUT + 3 * SLACK, **kwargs
            )
        except requests.RequestException as exc:
            answers[name] = (repr(exc), time.monotonic() - start)
        else:
            answers[name] = (r.status_code, time.monotonic() - start)

    start = time.monotonic()
    slow = SlowHeads(address)
    try:
        real = [
            threading.Thread(target=request, args=("healthz", "GET", "/healthz")),
            threading.Thread(
                target=request,
                args=("login", "POST", "/api/tokens"),
                kwargs={"auth": ("alice", "correct horse")},
            ),
        ]
        for thread in real:
            thread.start()
        for thread in real:
            thread.join(HEADER_TIMEOUT + 4 * SLACK)

        # Real requests are answered once the slow heads' places are free again, if not at once.
        assert answers.get("healthz", (None,))[0] == 200, (answers, live_stack.logs())
        assert answers.get("login", (None,))[0] == 201, (answers, live_stack.logs())
        assert max(elapsed for _status, elapsed in answers.values()) < HEADER_TIMEOUT + SLACK, answers

        slow.wait(2 * HEADER_TIMEOUT + 2 * SLACK)
        assert slow.answered is None, slow.answered
        open_ones = [sock for sock in slow.opened if sock not in slow.closed]
        assert not open_ones, f"{len(open_ones)} of {len(slow.opened)} slow connections still open"
        lived = {sock: slow.closed[sock] - slow.opened[sock] for sock in slow.opened}
        # Not before the header timeout; a trickle of bytes does not put it off: the tricklers
        # were accepted at once, and closed within the timeout and the machine's lateness.
        assert min(lived.values()) > HEADER_TIMEOUT - 1, sorted(lived.values())
        assert max(lived[sock] for sock in slow.tricklers) < HEADER_TIMEOUT + SLACK, sorted(lived.values())
        # Those that waited past eventlet's pool for a place got a whole header timeout of their own.
        assert max(lived.values()) < 2 * HEADER_TIMEOUT + SLACK, sorted(lived.values())
    finally:
        slow.close()


def _read_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"closed mid-response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(4096)
        assert chunk, "closed mid-body"
        body += chunk
    return head


class Silent:
    """A connection that never sends a byte; records when the node closed it."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=HEADER_TIMEOUT + 2 * SLACK)
        self.opened = time.monotonic()
        self.lived: float | None = None
        self._thread = threading.Thread(target=self._wait, daemon=True)
        self._thread.start()

    def _wait(self) -> None:
        try:
            if self.sock.recv(1) == b"":
                self.lived = time.monotonic() - self.opened
        except OSError:
            pass  # still open at the test's bound, or answered: lived stays None

    def close(self) -> float | None:
        self._thread.join(HEADER_TIMEOUT + 2 * SLACK)
        self.sock.close()
        return self.lived


def _post_slowly(address: tuple[str, int], pieces: int, stall: bool) -> tuple[bytes, float]:
    """POST /api/users with its body one byte-group a second, past the header timeout; or half
    the body and then nothing. What the node answered, and how long after the last byte sent."""
    body = json.dumps(
        {"username": f"slow{pieces}{stall}", "email": "slow@example.com", "password": "correct horse"}
    )
    body = body.encode()
    with socket.create_connection(address, timeout=IDLE + 2 * SLACK) as sock:
        sock.sendall(
            b"POST /api/users HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        size = -(-len(body) // pieces)
        for i in range(0, len(body) // 2 if stall else len(body), size):
            sock.sendall(body[i : i + size])
            time.sleep(1)
        sent = time.monotonic()
        answer = b""
        with contextlib.suppress(OSError):  # reset, or still open at the bound: see the answer
            while chunk := sock.recv(4096):
                answer += chunk
        return answer, time.monotonic() - sent


@pytest.mark.parametrize("live_stack", MODES, indirect=True)
def test_quiet_http_connections_are_closed_but_a_websocket_and_a_long_poll_go_on(live_stack):
    token = live_stack.create_user("alice")
    address = _address(live_stack.base_url)
    websocket = Listener(live_stack.base_url, {"token": token})
    silent = Silent(address)  # a connection opened ahead of a request that never comes
    uploads: dict[str, tuple[bytes, float]] = {}
    threads = [
        threading.Thread(
            target=lambda: uploads.__setitem__("steady", _post_slowly(address, 14, stall=False))
        ),
        threading.Thread(
            target=lambda: uploads.__setitem__("stalled", _post_slowly(address, 14, stall=True))
        ),
    ]
    for thread in threads:
        thread.start()
    try:
        with socket.create_connection(address, timeout=IDLE + SLACK + 5) as conn:
            request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            conn.sendall(request)
            head = _read_response(conn)
            assert head.startswith(b"HTTP/1.1 200")
            if live_stack.env["ASYNC_MODE"] == "threading":
                # Werkzeug keeps no connection alive: it closes each after its response.
                assert b"Connection: close" in head
                assert conn.recv(1) == b""
            else:
                # Kept alive: a second request within the timeout is served on the same connection.
                time.sleep(1)
                conn.sendall(request)
                assert _read_response(conn).startswith(b"HTTP/1.1 200")
                answered = time.monotonic()
                try:
                    assert conn.recv(1) == b""
                except TimeoutError:
                    pytest.fail("an idle kept-alive connection was never closed")
                idle = time.monotonic() - answered
                assert IDLE - 1 < idle < IDLE + SLACK, idle

        # A long-poll waits for data past both timeouts: Engine.IO's handshake and Socket.IO's
        # connect by hand, then a poll that the next ping ends.
        with requests.Session() as http:
            url = f"{live_stack.base_url}/socket.io/?EIO=4&transport=polling"
            sid = json.loads(http.get(url, timeout=10).text[1:])["sid"]
            url += f"&sid={sid}"
            assert http.post(url, data="40" + json.dumps({"token": token}), timeout=10).text == "OK"
            assert "40{" in http.get(url, timeout=10).text  # after the welcome event
            polled = time.monotonic()
            poll = http.get(url, timeout=PING_INTERVAL + SLACK)
            assert (poll.status_code, poll.text) == (200, "2"), poll.text  # the ping
            assert time.monotonic() - polled > HEADER_TIMEOUT

        # The WebSocket, quiet all this while (but for Engine.IO's pings), still gets events.
        task = live_stack.start_task(token, "example_long_task", steps=2, delay=0.1)
        events = websocket.until_finished(task["id"])
        assert events[-1]["status"] == "succeeded", live_stack.logs()
        assert websocket.sio.connected
    finally:
        websocket.close()
        lived = silent.close()
        for thread in threads:
            thread.join(2 * HEADER_TIMEOUT + 2 * SLACK)
    assert lived is not None, "a connection that sent nothing was never closed"
    assert HEADER_TIMEOUT - 1 < lived < HEADER_TIMEOUT + SLACK, lived

    # A body that keeps coming, however slowly, is read to its end; one that stops fails.
    answer, _ = uploads["steady"]
    assert answer.startswith(b"HTTP/1.1 201"), answer
    answer, waited = uploads["stalled"]
    assert answer == b"" or answer.startswith(b"HTTP/1.1 400"), answer
    assert IDLE - 1 < waited < IDLE + SLACK, (waited, answer)
