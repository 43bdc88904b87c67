"""``python run.py``: the Socket.IO web server (HOST and PORT from the environment)."""

import os

import config

# Monkey patching must precede every other import, so the mode is read with the stdlib only.
ASYNC_MODE = config.async_mode()
if ASYNC_MODE == "eventlet":
    import eventlet

    eventlet.monkey_patch()
elif ASYNC_MODE == "gevent":
    from gevent import monkey

    monkey.patch_all()

import signal  # noqa: E402

from app import create_app, start_background_services, stop_background_services  # noqa: E402
from app.extensions import socketio  # noqa: E402

app = create_app()
start_background_services(app)


def _shutdown(signum: int, frame: object) -> None:
    # SIGTERM (docker stop, a deploy) ends the process cleanly: background tasks stop and the
    # sockets close, so their clients reconnect to another node and resume from their last seq.
    stop_background_services(app)
    raise SystemExit(0)


signal.signal(signal.SIGTERM, _shutdown)


def _tune_server() -> dict[str, object]:
    """Options for the server, and the sockets it serves; eventlet's only (the default mode)."""
    if ASYNC_MODE != "eventlet":
        return {}
    from app.lean_socket import LeanHttpProtocol, use_lean_sockets

    use_lean_sockets(app.config["MAX_CONNECTIONS"])
    # eventlet's WSGI server serves 1,024 requests at once unless told otherwise, and every
    # long-poll holds one; an open WebSocket holds none (its request has ended, see lean_socket).
    return {"max_size": app.config["MAX_CONNECTIONS"], "protocol": LeanHttpProtocol}


if __name__ == "__main__":
    socketio.run(
        app,
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "5000")),
        # The threading mode serves with Werkzeug; fine for development, and opting in is explicit.
        allow_unsafe_werkzeug=ASYNC_MODE == "threading",
        **_tune_server(),
    )
