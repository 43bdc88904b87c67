"""Application factory: ``create_app`` only calls named steps."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError
from werkzeug.middleware.proxy_fix import ProxyFix

import config as settings
from app import input_guard, security_headers
from app.admin import bp as admin_bp
from app.api import bp as api_bp
from app.auth import bp as auth_bp
from app.backfill import Backfill
from app.blocking import cooperative_engine
from app.broker import connect
from app.channel import Subscriber
from app.commands import register_commands
from app.database import answer_unavailable
from app.extensions import broker, csrf, db, login_manager, migrate, socketio
from app.fanout import Fanout, SocketExpiry
from app.logins import load_user
from app.main import bp as main_bp
from app.ratelimits import init_limiter
from app.sansio.guard import MAX_MESSAGE_BYTES
from app.sansio.packet import Packet
from app.search_views import bp as search_bp
from app.sockets import register_socket_handlers
from app.watchdog import Watchdog


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    app = Flask(
        __name__,
        static_folder=str(settings.BASE_DIR / "static"),
        instance_path=str(settings.BASE_DIR / "instance"),
    )
    app.config.from_mapping(settings.from_env() if config is None else config)
    register_request_defences(app)
    register_extensions(app)
    register_blueprints(app)
    register_error_handlers(app)
    register_socket_handlers(app)
    register_background_services(app)
    register_commands(app)
    return app


def register_request_defences(app: Flask) -> None:
    input_guard.init_app(app)
    security_headers.init_app(app)


def register_extensions(app: Flask) -> None:
    db.init_app(app)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        os.makedirs(app.instance_path, exist_ok=True)
    with app.app_context():
        cooperative_engine(db.engine)
        if db.engine.dialect.name == "sqlite":
            event.listen(db.engine, "connect", _sqlite_pragmas)
    migrate.init_app(app, db, render_as_batch=True)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.user_loader(load_user)
    csrf.init_app(app)
    broker.init_app(app)
    init_limiter(app)
    socketio.init_app(
        app,
        async_mode=app.config["ASYNC_MODE"],
        cors_allowed_origins=app.config["SOCKETIO_CORS_ORIGINS"] or None,
        serializer=Packet,
        ping_interval=app.config["PING_INTERVAL"],
        ping_timeout=app.config["PING_TIMEOUT"],
        max_http_buffer_size=MAX_MESSAGE_BYTES,
    )
    app.wsgi_app = _without_websocket_extensions(app.wsgi_app)  # type: ignore[method-assign]
    if app.config["TRUSTED_PROXIES"]:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=app.config["TRUSTED_PROXIES"])  # type: ignore[method-assign]


def register_blueprints(app: Flask) -> None:
    app.register_blueprint(auth_bp, url_prefix="/auth")
    app.register_blueprint(main_bp)
    app.register_blueprint(admin_bp, url_prefix="/admin")
    app.register_blueprint(search_bp)
    # The API authenticates with bearer tokens, never cookies, so CSRF cannot apply to it.
    csrf.exempt(api_bp)
    app.register_blueprint(api_bp, url_prefix="/api")


def register_error_handlers(app: Flask) -> None:
    # A database that is restarting or locked is a passing state: 503, not a 500.
    app.register_error_handler(DBAPIError, answer_unavailable)


def register_background_services(app: Flask) -> None:
    """Create (not start) what a web process runs beside its requests; ``run.py`` starts them."""
    fanout = app.extensions["fanout"] = Fanout(
        socketio, app.config["MAX_SOCKET_BACKLOG"], app.config["STALLED_SOCKET_TIMEOUT"]
    )
    backfill = app.extensions["backfill"] = Backfill(app, socketio, fanout)
    subscription = connect(app.config["REDIS_URL"], health_check_interval=30, protocol=2)
    app.extensions["progress_subscriber"] = Subscriber(
        socketio, subscription, app.extensions["broker"].keys.channel, fanout.deliver, backfill.resubscribed
    )
    app.extensions["watchdog"] = Watchdog(app, socketio)
    app.extensions["socket_expiry"] = SocketExpiry(app, socketio, fanout)


def start_background_services(app: Flask) -> None:
    app.extensions["progress_subscriber"].ensure_started()
    app.extensions["backfill"].start()
    app.extensions["watchdog"].start()
    app.extensions["socket_expiry"].start()


def stop_background_services(app: Flask) -> None:
    app.extensions["progress_subscriber"].stop()
    app.extensions["backfill"].stop()
    app.extensions["watchdog"].stop()
    app.extensions["socket_expiry"].stop()


def _without_websocket_extensions(wsgi_app: Callable[..., Any]) -> Callable[..., Any]:
    # Every browser offers permessage-deflate, and the WebSocket servers under Flask-SocketIO
    # accept it: a zlib compressor and decompressor kept per connection (~100 KiB; an idle
    # socket is ~13 KiB without) and every event compressed on the push path, to save a few
    # hundred bytes per event. Declining the offer is the WebSocket's own fallback.
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
        return wsgi_app(environ, start_response)

    return app


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Web and worker processes write to one file: WAL lets readers run beside the writer,
    # and the busy timeout makes a writer wait for the lock instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
