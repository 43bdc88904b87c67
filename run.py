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

app = create_app()
start_background_services(app)


def _shutdown(signum: int, frame: object) -> None:
    # SIGTERM (docker stop, a deploy) ends the process cleanly: background tasks stop and the
    # sockets close, so their clients reconnect to another node and resume from their last seq.
    stop_background_services(app)
    raise SystemExit(0)


signal.signal(signal.SIGTERM, _shutdown)


if __name__ == "__main__":
    if ASYNC_MODE == "eventlet":
        from app.eventlet_server import serve
    elif ASYNC_MODE == "gevent":
        from app.gevent_server import serve
    else:
        from app.threading_server import serve
    serve(app, os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "5000")))
