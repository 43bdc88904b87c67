"""``python bench/floor_server.py KIND PORT``: the layers under the product, for memory per socket.

Each kind is one layer more than the one before, served by eventlet's WSGI server as
``run.py`` serves the product (small HTTP buffers, no connection cap):

- ``websocket``: eventlet's WebSocket alone, answering just enough Engine.IO and Socket.IO
  for ``bench.rawclients`` to connect; one green thread per connection;
- ``socketio``: a bare python-socketio server on python-engineio's own sockets;
- ``socketio-lean``: the same with ``app.lean_socket``'s sockets.
"""

import sys

import eventlet

eventlet.monkey_patch()

from pathlib import Path  # noqa: E402

import eventlet.websocket  # noqa: E402
import eventlet.wsgi  # noqa: E402
import socketio  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from app.lean_socket import LeanHttpProtocol, use_lean_sockets  # noqa: E402

KINDS = ("websocket", "socketio", "socketio-lean")


@eventlet.websocket.WebSocketWSGI
def _websocket(ws: eventlet.websocket.WebSocket) -> None:
    ws.send('0{"sid":"s","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}')
    ws.wait()  # the client's Socket.IO connect
    ws.send('40{"sid":"n"}')
    while ws.wait() is not None:
        pass


def _socketio() -> socketio.WSGIApp:
    sio = socketio.Server(async_mode="eventlet")
    sio.on("connect", lambda sid, environ, auth: True)
    return socketio.WSGIApp(sio, _ok)


def _ok(environ: dict, start_response: object) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])  # type: ignore[operator]
    return [b"ok"]


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind not in KINDS:
        raise SystemExit(f"KIND must be one of {', '.join(KINDS)}")
    if kind == "socketio-lean":
        use_lean_sockets(max_open=100_000)

    def app(environ: dict, start_response: object) -> object:
        if environ["PATH_INFO"] == "/healthz":
            return _ok(environ, start_response)
        return _websocket(environ, start_response)

    served = app if kind == "websocket" else _socketio()
    eventlet.wsgi.server(
        eventlet.listen(("127.0.0.1", port)),
        served,
        log_output=False,
        max_size=100_000,
        protocol=LeanHttpProtocol,
    )


if __name__ == "__main__":
    main()
