"""Settings, read from the environment once, as a plain mapping for ``create_app``.

Only the standard library is imported here: ``run.py`` reads ``ASYNC_MODE`` before
monkey patching, which must happen before anything else is imported.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent
DEV_SECRET_KEY = "dev-only-insecure-secret-key"  # noqa: S105 -- refused in production
# A production SECRET_KEY shorter than this refuses to start (secrets.token_hex(32) gives 64).
MIN_SECRET_KEY_BYTES = 32
ASYNC_MODES = ("eventlet", "gevent", "threading")
ENVIRONMENTS = ("development", "production")


class ConfigError(RuntimeError):
    pass


def _int(environ: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    # Every integer setting is a count, a duration or a port: none of them means anything
    # below its minimum, and a zero TTL or limit would fail far from here (a Redis error at
    # the first job, a node refusing every socket).
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _seconds(environ: Mapping[str, str], name: str, default: int) -> int:
    # Whole seconds: Engine.IO announces its intervals to clients in whole seconds.
    return _int(environ, name, default, minimum=1)


def _float(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must not be negative, got {raw!r}")
    return value


def _bool(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = environ.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _timeouts(environ: Mapping[str, str]) -> dict[str, int]:
    """``TASK_TIMEOUTS=export_posts=120,compute_primes=60``: per-type overrides, in seconds."""
    result = {}
    for item in filter(None, (part.strip() for part in environ.get("TASK_TIMEOUTS", "").split(","))):
        name, _, seconds = item.partition("=")
        try:
            result[name.strip()] = int(seconds)
        except ValueError:
            raise ConfigError(f"TASK_TIMEOUTS entries must look like name=seconds, got {item!r}") from None
        if result[name.strip()] <= 0:
            raise ConfigError(f"TASK_TIMEOUTS must be positive, got {item!r}")
    return result


def async_mode(environ: Mapping[str, str] = os.environ) -> str:
    mode = environ.get("ASYNC_MODE", "eventlet")
    if mode not in ASYNC_MODES:
        raise ConfigError(f"ASYNC_MODE must be one of {', '.join(ASYNC_MODES)}, got {mode!r}")
    return mode


def database_url(raw: str | None) -> str:
    if not raw:
        return f"sqlite:///{BASE_DIR / 'instance' / 'app.db'}"
    # Operators write the standard postgres:// URL; SQLAlchemy needs the driver named.
    for prefix in ("postgres://", "postgresql://"):
        if raw.startswith(prefix):
            return "postgresql+psycopg://" + raw[len(prefix) :]
    return raw


def engine_options(url: str) -> dict[str, Any]:
    """SQLAlchemy engine options: pooled connections that survive a database restart."""
    if url.startswith("sqlite"):
        # A file has no server to restart or to wait for.
        return {}
    return {
        # A pooled connection is tested as it is taken: after a restart, a dead one is replaced
        # instead of failing the request that took it.
        "pool_pre_ping": True,
        # A server that does not answer (a lost host) fails a request in seconds, never hangs it.
        "connect_args": {"connect_timeout": 5},
    }


def _check_secret_key(secret_key: str) -> None:
    # Sessions and CSRF tokens are HMACs under this key: a short or known one can be guessed
    # offline from a single cookie, and then every session forged.
    how = 'make one with: python -c "import secrets; print(secrets.token_hex(32))"'
    if secret_key in ("", DEV_SECRET_KEY):
        raise ConfigError(f"SECRET_KEY must be set to a long random value in production; {how}")
    if len(secret_key.encode()) < MIN_SECRET_KEY_BYTES:
        raise ConfigError(
            f"SECRET_KEY must be at least {MIN_SECRET_KEY_BYTES} bytes in production, "
            f"got {len(secret_key.encode())}; {how}"
        )


def from_env(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    env = environ.get("APP_ENV", "development")
    if env not in ENVIRONMENTS:
        raise ConfigError(f"APP_ENV must be one of {', '.join(ENVIRONMENTS)}, got {env!r}")

    secret_key = environ.get("SECRET_KEY", "")
    if env == "production":
        _check_secret_key(secret_key)

    return {
        "APP_ENV": env,
        "SECRET_KEY": secret_key or DEV_SECRET_KEY,
        "SESSION_COOKIE_SECURE": env == "production",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": env == "production",
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "SQLALCHEMY_DATABASE_URI": (url := database_url(environ.get("DATABASE_URL"))),
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options(url),
        "REDIS_URL": environ.get("REDIS_URL", "redis://localhost:6379/0"),
        "TASK_QUEUE": environ.get("TASK_QUEUE", "microblog-tasks"),
        "ASYNC_MODE": async_mode(environ),
        "TOKEN_TTL": _int(environ, "TOKEN_TTL", 24 * 3600, minimum=1),
        # Events are kept this long for clients that reconnect and resume (seconds).
        "NOTIFICATION_RETENTION": _int(environ, "NOTIFICATION_RETENTION", 7 * 24 * 3600, minimum=1),
        # A resume further behind than this gets a snapshot instead of a replay: the replay is
        # sent before the connection is acknowledged, and clients wait about a second for that.
        "REPLAY_LIMIT": _int(environ, "REPLAY_LIMIT", 1_000),
        # Task lifecycle: see README, "Task lifecycle".
        "RESULTS_DIR": environ.get("RESULTS_DIR") or str(BASE_DIR / "instance" / "results"),
        "RESULT_TTL": _int(environ, "RESULT_TTL", 24 * 3600, minimum=1),
        "WORKER_LOST_AFTER": _int(environ, "WORKER_LOST_AFTER", 15, minimum=1),
        "WATCHDOG_INTERVAL": _int(environ, "WATCHDOG_INTERVAL", 2, minimum=1),
        "CANCEL_GRACE": _int(environ, "CANCEL_GRACE", 3),
        "PROGRESS_MIN_INTERVAL": _float(environ, "PROGRESS_MIN_INTERVAL", 0.05),
        "PROGRESS_STORE_INTERVAL": _float(environ, "PROGRESS_STORE_INTERVAL", 0.5),
        # Sockets one web process serves at once (eventlet); its file limit is fitted to it at start-up.
        "MAX_CONNECTIONS": _int(environ, "MAX_CONNECTIONS", 10_000, minimum=1),
        # Packets queued for one socket past which its volatile ticks are skipped (0: never).
        "MAX_SOCKET_BACKLOG": _int(environ, "MAX_SOCKET_BACKLOG", 100),
        # Seconds a lagging socket may go without its client reading before it is closed (0: never).
        "STALLED_SOCKET_TIMEOUT": _float(environ, "STALLED_SOCKET_TIMEOUT", 10.0),
        # Seconds an HTTP client may stay silent while the node waits for it (a kept-alive
        # connection's next request, the rest of a body); longer than a proxy keeps idle
        # upstream connections (nginx: 60 s), so the proxy closes them first.
        "HTTP_IDLE_TIMEOUT": _seconds(environ, "HTTP_IDLE_TIMEOUT", 75),
        # Engine.IO's heartbeat: the server pings every PING_INTERVAL seconds and drops a client
        # whose answer takes longer than PING_TIMEOUT (python-engineio's defaults).
        "PING_INTERVAL": _seconds(environ, "PING_INTERVAL", 25),
        "PING_TIMEOUT": _seconds(environ, "PING_TIMEOUT", 20),
        "MAX_ACTIVE_TASKS_PER_USER": _int(environ, "MAX_ACTIVE_TASKS_PER_USER", 5, minimum=1),
        # Reverse proxies in front of the web nodes whose X-Forwarded-For is believed (0: none):
        # the client's address is what the per-address login limit counts.
        "TRUSTED_PROXIES": _int(environ, "TRUSTED_PROXIES", 0),
        "TASK_TIMEOUTS": _timeouts(environ),
        "MAIL_SERVER": environ.get("MAIL_SERVER", "localhost"),
        "MAIL_PORT": _int(environ, "MAIL_PORT", 25, minimum=1),
        "MAIL_USE_TLS": _bool(environ, "MAIL_USE_TLS", False),
        "MAIL_USERNAME": environ.get("MAIL_USERNAME") or None,
        "MAIL_PASSWORD": environ.get("MAIL_PASSWORD") or None,
        "MAIL_SENDER": environ.get("MAIL_SENDER", "microblog@localhost"),
        # Socket.IO checks the Origin header against the serving host by default;
        # extra origins (e.g. a reverse proxy's public URL) are opted into explicitly.
        "SOCKETIO_CORS_ORIGINS": [o for o in environ.get("CORS_ORIGINS", "").split(",") if o],
    }
