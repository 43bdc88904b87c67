"""The database being away: which errors mean that, how a job waits for it, what a request answers.

A restarted PostgreSQL or SQLite's write lock held by another process is a passing state,
not a bug: a job waits for it (within DATABASE_WAIT), a web request answers 503 at once.
Any other database error (an integrity error, a bad statement) is never retried.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

from flask import jsonify, request
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.wrappers import Response

from app.extensions import db

log = logging.getLogger(__name__)

T = TypeVar("T")

# How long a job waits for the database before it gives up, and the longest pause between tries.
DATABASE_WAIT = 60.0
_MAX_PAUSE = 2.0

# SQLSTATE classes that mean the server cannot serve now: connection exception, insufficient
# resources, and an operator's intervention (shutting down, starting up).
_UNAVAILABLE_SQLSTATES = ("08", "53", "57P")


def unavailable(exc: BaseException) -> bool:
    """The database cannot answer now (down, restarting, locked): trying again later may work."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    if not isinstance(exc, OperationalError):
        return False
    orig = exc.orig
    if isinstance(orig, sqlite3.Error):
        # SQLite reports a bad statement as an OperationalError too: only its lock is passing.
        return getattr(orig, "sqlite_errorname", "").startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))
    sqlstate = getattr(orig, "sqlstate", None)
    # No SQLSTATE: the driver never reached a server (refused, cut, timed out).
    return sqlstate is None or sqlstate.startswith(_UNAVAILABLE_SQLSTATES)


class Outage:
    """One process's view of the database being unavailable: a deadline and a log line per change."""

    def __init__(self, what: str, bound: float = DATABASE_WAIT) -> None:
        self._what = what
        self._bound = bound
        self._since: float | None = None
        self._pause = 0.1

    def failed(self, exc: DBAPIError) -> None:
        """Note a failed try; re-raises ``exc`` unless it is an outage still within the bound.

        The session's transaction is gone with its connection: it is rolled back here, so the
        next try starts a new one.
        """
        if not unavailable(exc):
            raise exc
        db.session.rollback()
        now = time.monotonic()
        if self._since is None:
            self._since = now
            log.warning(
                "%s: the database is unavailable (%s); waiting up to %.0f s",
                self._what,
                _summary(exc),
                self._bound,
            )
        elif now - self._since > self._bound:
            log.error(
                "%s: the database has been unavailable for %.0f s; giving up", self._what, now - self._since
            )
            raise exc

    def recovered(self) -> None:
        if self._since is not None:
            log.warning(
                "%s: the database answers again after %.1f s", self._what, time.monotonic() - self._since
            )
            self._since = None
            self._pause = 0.1

    def retry(self, attempt: Callable[[], T]) -> T:
        """``attempt()`` until it succeeds, with capped backoff while the database is unavailable."""
        while True:
            try:
                result = attempt()
            except DBAPIError as exc:
                self.failed(exc)
                time.sleep(self._pause)
                self._pause = min(self._pause * 2, _MAX_PAUSE)
            else:
                self.recovered()
                return result


def _summary(exc: DBAPIError) -> str:
    first_line = str(exc.orig).strip().splitlines()
    return f"{type(exc.orig).__name__}: {first_line[0] if first_line else ''}"


def answer_unavailable(exc: DBAPIError) -> tuple[Response | str, int]:
    """A request that met an unavailable database: 503 with a clear message; any other error stays a 500."""
    if not unavailable(exc):
        raise exc
    log.warning("%s %s: the database is unavailable (%s)", request.method, request.path, _summary(exc))
    message = "The database is unavailable; try again in a moment."
    if request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json":
        return jsonify({"error": message}), 503
    # Not a template: rendering one loads the logged-in user (Flask-Login's context processor).
    return _PAGE.format(message=message), 503


_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Unavailable</title></head>
<body><h1>Temporarily unavailable</h1><p>{message}</p></body>
</html>
"""
