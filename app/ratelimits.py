"""Rate limits (Flask-Limiter): password guessing on the login form and ``/api/tokens``, task starts.

Counters live in the deployment's Redis (``REDIS_URL``), under keys that carry the deployment's
namespace (its ``TASK_QUEUE``, as ``app.broker.Keys`` does), so two deployments on one Redis server
never share a counter, and every web node of one deployment counts together. While Redis does not
answer, each process counts in its own memory (Flask-Limiter's in-memory fallback) and goes back
to Redis when it answers again; a login is never refused because Redis is away. Under eventlet
the Redis calls wait on monkey-patched sockets, and with the same short timeouts as the broker's
client.

Limits (fixed windows of one minute; none is hit by a person typing):

- ``LOGINS_PER_ACCOUNT``: attempts to log in as one account, on the form and ``/api/tokens``
  together, whatever the case or compatibility form of the name (``username_key``). Stops a slow
  guess from many addresses; the account's owner waits at most a minute.
- ``LOGINS_PER_ADDRESS``: attempts from one client address on each of the two endpoints. Stops one
  client guessing across many accounts; higher, for people behind one NAT.
- ``REGISTRATIONS_PER_ADDRESS``: accounts created from one client address, on the form and
  ``POST /api/users`` together, per hour. Each registration mails a confirmation link to the
  address given, so without it one client could mail any inbox through us, and make accounts
  faster than the per-user limits below could matter.
- ``TASK_STARTS_PER_USER``: tasks one user starts, from the page and the API together (beside
  ``MAX_ACTIVE_TASKS_PER_USER``, which bounds how many run at once, not how fast they are started).

Over a limit: 429 with ``Retry-After`` (seconds); the API answers ``{"error": ...}``, a page a message.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, g, request
from flask_limiter.util import get_remote_address
from flask_login import current_user

from app.broker import CONNECT_TIMEOUT, REPLY_TIMEOUT
from app.extensions import broker, limiter
from app.sansio.identity import username_key

LOGINS_PER_ACCOUNT = "10 per minute"
LOGINS_PER_ADDRESS = "30 per minute"
REGISTRATIONS_PER_ADDRESS = "20 per hour"
TASK_STARTS_PER_USER = "20 per minute"

TOO_MANY_LOGINS = "Too many login attempts; try again in a minute."
TOO_MANY_REGISTRATIONS = "Too many accounts were created from your address; try again in an hour."
TOO_MANY_STARTS = "You are starting tasks too fast; wait a minute and try again."

F = TypeVar("F", bound=Callable[..., Any])


def init_limiter(app: Flask) -> None:
    app.config.update(
        RATELIMIT_STORAGE_URI=app.config["REDIS_URL"],
        RATELIMIT_STORAGE_OPTIONS={
            "socket_connect_timeout": CONNECT_TIMEOUT,
            "socket_timeout": REPLY_TIMEOUT,
        },
        RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,
        # Retry-After (and the X-RateLimit-* headers) on the limited endpoints' answers.
        RATELIMIT_HEADERS_ENABLED=True,
    )
    limiter.init_app(app)


def _key(*parts: str) -> str:
    # The namespace goes into each key, not into Flask-Limiter's key_prefix: one Limiter object
    # serves every app a process makes, and keeps the first app's prefix.
    return ":".join((broker.keys.namespace, *parts))


def _account() -> str:
    auth = request.authorization
    name = auth.username if auth is not None and auth.username else request.form.get("username", "")
    # Hashed: any input is a short key of one alphabet.
    digest = hashlib.sha256(username_key(name or "").encode()).hexdigest()
    return _key("login-account", digest)


def _address() -> str:
    return _key("login-address", get_remote_address() or "")


def _starter() -> str:
    user = g.get("api_user") or current_user
    return _key("task-starts", str(user.id))


def login_limited(view: F) -> F:
    """Limit a login endpoint (its POSTs) per account, shared by both endpoints, and per address."""
    per_address = limiter.limit(
        LOGINS_PER_ADDRESS, key_func=_address, methods=["POST"], error_message=TOO_MANY_LOGINS
    )
    per_account = limiter.shared_limit(
        LOGINS_PER_ACCOUNT,
        scope="login-account",
        key_func=_account,
        methods=["POST"],
        error_message=TOO_MANY_LOGINS,
    )
    return per_account(per_address(view))


def register_limited(view: F) -> F:
    """Limit account creation (its POSTs) per client address, shared by the form and the API."""
    return limiter.shared_limit(
        REGISTRATIONS_PER_ADDRESS,
        scope="registrations",
        key_func=lambda: _key("registrations", get_remote_address() or ""),
        methods=["POST"],
        error_message=TOO_MANY_REGISTRATIONS,
    )(view)


def start_limited(view: F) -> F:
    """Limit task starts per user (inside the authentication, which names the user)."""
    return limiter.shared_limit(
        TASK_STARTS_PER_USER, scope="task-starts", key_func=_starter, error_message=TOO_MANY_STARTS
    )(view)
