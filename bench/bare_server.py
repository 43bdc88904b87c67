"""``python bench/bare_server.py MODE PORT``: the emit ceiling, a bare python-socketio server.

No Flask, no Redis, no database: ``GET /emit?count=N`` starts a loop that emits N
``task_progress`` payloads (the same shape as the product's) round-robin to every
connected client, as fast as the server can write them. It is served the
way the product is served in each async mode (with connections that send without Nagle's
delay), so the ratio product/ceiling is the
cost of everything the product adds on the path.
"""

import sys

MODE = sys.argv[1] if len(sys.argv) > 1 else "eventlet"
# Monkey patching must precede every other import, as in run.py.
if MODE == "eventlet":
    import eventlet

    eventlet.monkey_patch()
elif MODE == "gevent":
    from gevent import monkey

    monkey.patch_all()

import time  # noqa: E402
from pathlib import Path  # noqa: E402
from urllib.parse import parse_qs  # noqa: E402

import socketio  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.payloads import progress_payload  # noqa: E402

# Emits between yields, and the most packets one client may have queued before the
# emitter waits for the writers: the loop runs flat out without queues growing unbounded.
BATCH = 64
MAX_QUEUED = 256

sio = socketio.Server(async_mode=MODE)
connected: list[str] = []


@sio.event
def connect(sid: str, environ: dict, auth: object) -> None:
    connected.append(sid)


@sio.event
def disconnect(sid: str, reason: object = None) -> None:
    connected.remove(sid)


def _queued(sid: str) -> int:
    socket = sio.eio.sockets.get(sio.manager.eio_sid_from_sid(sid, "/"))
    return socket.queue.qsize() if socket is not None else 0


def emitter(count: int) -> None:
    sids = list(connected)
    payloads = {sid: progress_payload(i + 1, 0) for i, sid in enumerate(sids)}
    i, n = 0, len(sids)
    while i < count and n:
        for _ in range(min(BATCH, count - i)):
            sid = sids[i % n]
            payload = payloads[sid]
            payload["seq"] += 1
            payload["ts"] = time.time()
            sio.emit("task_progress", payload, to=sid)
            i += 1
        sio.sleep(0)
        while _queued(sids[i % n]) > MAX_QUEUED:
            sio.sleep(0.0005)


def control(environ: dict, start_response: object) -> list[bytes]:
    if environ["PATH_INFO"] == "/emit":
        count = int(parse_qs(environ["QUERY_STRING"]).get("count", ["1"])[0])
        sio.start_background_task(emitter, count)
    start_response("200 OK", [("Content-Type", "text/plain")])  # type: ignore[operator]
    return [b"ok"]


app = socketio.WSGIApp(sio, control)


def main() -> None:
    port = int(sys.argv[2])
    if MODE == "eventlet":
        import eventlet.wsgi

        from app.eventlet_server import Listener

        eventlet.wsgi.server(Listener(eventlet.listen(("127.0.0.1", port))), app, log_output=False)
    elif MODE == "gevent":
        from gevent import pywsgi

        from app.gevent_server import NoDelayHandler

        pywsgi.WSGIServer(("127.0.0.1", port), app, handler_class=NoDelayHandler, log=None).serve_forever()
    else:
        from werkzeug.serving import run_simple

        from app.threading_server import NoDelayRequestHandler

        run_simple("127.0.0.1", port, app, threaded=True, request_handler=NoDelayRequestHandler)


if __name__ == "__main__":
    main()
