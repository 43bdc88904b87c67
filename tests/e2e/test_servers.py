"""The servers run.py starts: connections that send without delay (in every async mode), and
under eventlet an open-file limit raised to fit MAX_CONNECTIONS at start-up, and when the node
runs out of files anyway, new connections that wait instead of the node stopping."""

from __future__ import annotations

import resource
import socket
import subprocess
import sys
import textwrap
from urllib.parse import urlsplit

import pytest
import requests

from tests.support import ROOT, wait_for

pytestmark = pytest.mark.e2e

LOW_LIMIT = 64


def test_eventlet_connections_send_without_waiting_for_acknowledgements():
    # In a child, as run.py runs it: eventlet is imported there, never in the test process.
    script = textwrap.dedent("""
        import socket
        import eventlet
        from app.eventlet_server import Listener
        listener = Listener(eventlet.listen(("127.0.0.1", 0)))
        client = eventlet.connect(listener.getsockname())
        conn, _address = listener.accept()
        print(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
    """)
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "1"  # Nagle's algorithm off


def test_gevent_connections_send_without_waiting_for_acknowledgements():
    # The handler's connection, seen from its first request.
    script = textwrap.dedent("""
        from gevent import monkey
        monkey.patch_all()
        import socket
        from gevent import pywsgi
        from app.gevent_server import NoDelayHandler

        seen = []

        class Probe(NoDelayHandler):
            def handle_one_request(self):
                seen.append(self.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                return super().handle_one_request()

        def app(environ, start_response):
            start_response("200 OK", [("Content-Length", "2")])
            return [b"ok"]

        server = pywsgi.WSGIServer(("127.0.0.1", 0), app, handler_class=Probe, log=None)
        server.start()
        client = socket.create_connection(server.address)
        client.sendall(b"GET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
        assert client.recv(100).startswith(b"HTTP/1.1 200")
        print(seen[0])
    """)
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "1"  # Nagle's algorithm off


def test_threading_connections_send_without_waiting_for_acknowledgements():
    # The handler's connection, seen from its first request.
    script = textwrap.dedent("""
        import socket
        import threading
        from werkzeug.serving import make_server
        from app.threading_server import NoDelayRequestHandler

        seen = []

        class Probe(NoDelayRequestHandler):
            def handle_one_request(self):
                seen.append(self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                return super().handle_one_request()

        def app(environ, start_response):
            start_response("200 OK", [("Content-Length", "2")])
            return [b"ok"]

        server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Probe)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        client = socket.create_connection(("127.0.0.1", server.port))
        client.sendall(b"GET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
        assert client.recv(100).startswith(b"HTTP/1.1 200")
        print(seen[0])
        server.shutdown()
    """)
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "1"  # Nagle's algorithm off


def _limits_after_fitting(soft: int, hard: int, wanted: int) -> tuple[int, int]:
    # In a child: the test process keeps its own limits.
    script = textwrap.dedent(f"""
        import resource
        from app.file_limit import fit_file_limit
        resource.setrlimit(resource.RLIMIT_NOFILE, ({soft}, {hard}))
        returned = fit_file_limit({wanted})
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        assert returned == soft, (returned, soft)
        print(soft, hard)
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    soft, hard = out.stdout.split()
    return int(soft), int(hard)


def test_the_soft_file_limit_is_raised_to_what_the_node_needs_within_the_hard_limit():
    assert _limits_after_fitting(200, 1000, 500) == (500, 1000)
    assert _limits_after_fitting(200, 300, 500) == (300, 300)
    assert _limits_after_fitting(800, 1000, 500) == (800, 1000)  # never lowered


def test_a_node_out_of_files_keeps_serving_once_connections_close(live_stack):
    web = live_stack.processes[0]
    resource.prlimit(web.pid, resource.RLIMIT_NOFILE, (LOW_LIMIT, LOW_LIMIT))
    address = urlsplit(live_stack.base_url)
    held: list[socket.socket] = []
    try:
        # Each one an HTTP request that never ends: the node keeps its connection open. More
        # than its limit: the last ones wait in the listen backlog.
        for _ in range(LOW_LIMIT + 16):
            conn = socket.create_connection((address.hostname, address.port), timeout=5)
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
            held.append(conn)
        wait_for(
            lambda: "cannot accept connections" in web.log() or not web.alive(),
            10,
            "the node to run out of files",
        )
        assert web.alive(), f"the node stopped when it ran out of files:\n{web.log()}"
    finally:
        for conn in held:
            conn.close()
    # Its files back, the node accepts again: what waited in the listen backlog, then new ones.
    answer = wait_for(lambda: _healthz(live_stack.base_url), 10, "the node to answer again")
    assert answer.status_code == 200
    assert web.alive()


def _healthz(base_url: str) -> requests.Response | None:
    try:
        return requests.get(f"{base_url}/healthz", timeout=2)
    except requests.RequestException:
        return None
