"""Blocking calls on a web node: run where they cannot stall the other sockets.

Under eventlet or gevent every connection of the process shares one OS thread (the hub). A call
that blocks in C (a password hash, SQLite's busy wait for another process's lock, libpq waiting
for a row lock) stops every socket for as long as it lasts. ``call`` runs such a function in the
async library's thread pool (``eventlet.tpool``, gevent's hub thread pool) and waits for it as a
green thread; a process that is not monkey patched (threading mode, RQ workers, the ``flask``
CLI) calls it directly.

The database is covered below the ORM, so no query has to know: ``cooperative_engine``
makes every DBAPI call of an engine cooperate. SQLite has no socket to wait on, so its
connections are wrapped and whatever may wait for its lock goes through ``call``; psycopg waits
on its socket, and is given a wait that yields to the hub instead.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Engine

T = TypeVar("T")


def mode() -> str:
    """``eventlet``, ``gevent`` or ``threading``: what this process's monkey patching makes of it.

    Read from the patching itself, not from ``ASYNC_MODE``: a worker or the ``flask`` CLI reads
    the same settings as the web node but is never patched, and must call directly.
    """
    patcher = sys.modules.get("eventlet.patcher")
    if patcher is not None and patcher.is_monkey_patched("thread"):
        return "eventlet"
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("threading"):
        return "gevent"
    return "threading"


def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``, in a thread when this process runs on a hub."""
    return _CALL[mode()](fn, *args, **kwargs)


def compute(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``call`` for work that keeps a core busy (a password hash): at most ``CPU_SLOTS`` at once.

    A flood of such calls (a brute force on the login) then queues for its slots, and the hub and
    the threads waiting on the database keep a core, instead of every thread taking its share.
    """
    if mode() == "threading":
        return fn(*args, **kwargs)
    with _cpu_slots():
        return call(fn, *args, **kwargs)


def _cores() -> int:
    # The cores this process may run on (a container's share) where the platform tells.
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


# Leave one core to the hub (and to the threads that only wait), when there is more than one.
CPU_SLOTS = max(1, _cores() - 1)


@functools.cache
def _cpu_slots() -> threading.BoundedSemaphore:
    # Made on first use, which is after monkey patching: a green semaphore, waited on without a thread.
    return threading.BoundedSemaphore(CPU_SLOTS)


def _direct(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return fn(*args, **kwargs)


def _eventlet(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    from eventlet import tpool

    return tpool.execute(fn, *args, **kwargs)


def _gevent(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    import gevent

    return gevent.get_hub().threadpool.apply(fn, args, kwargs)


_CALL: dict[str, Callable[..., Any]] = {"eventlet": _eventlet, "gevent": _gevent, "threading": _direct}


def cooperative_engine(engine: Engine) -> None:
    """Make every DBAPI call of ``engine`` leave the hub free (nothing to do in threading mode)."""
    current = mode()
    if current == "threading":
        return
    if engine.dialect.name == "sqlite":
        event.listen(engine, "do_connect", _sqlite_connect)
    elif engine.dialect.driver == "psycopg" and current == "eventlet":
        _psycopg_waits_on_the_hub()


def _sqlite_connect(
    dialect: Any, _record: Any, cargs: list[Any], cparams: dict[str, Any]
) -> ThreadedConnection:
    # One pooled connection is used by one green thread at a time, but its calls run on
    # whichever pool thread is free: sqlite3's same-thread check would refuse that.
    cparams["check_same_thread"] = False
    return ThreadedConnection(call(dialect.connect, *cargs, **cparams))


class _Proxy:
    """Everything but the blocking methods goes straight to the wrapped DBAPI object."""

    __slots__ = ("_target",)

    def __init__(self, target: Any) -> None:
        object.__setattr__(self, "_target", target)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)

    def __setattr__(self, name: str, value: Any) -> None:
        # e.g. the dialect's ``isolation_level = None`` for AUTOCOMMIT.
        setattr(self._target, name, value)


class ThreadedConnection(_Proxy):
    """A sqlite3 connection whose calls that may wait for SQLite's write lock run in a thread.

    Every connection runs in WAL mode (``_sqlite_pragmas``), where a read waits for no lock: a
    ``SELECT`` runs on the hub, as its fetches do (they only step a statement that holds its
    snapshot). Whatever writes, or might (any other statement), and a commit that ends a write
    go to the pool, where the busy timeout can wait for another process's lock. Ending a
    transaction that never began (every request's read ends so) is a no-op in sqlite3 and stays
    on the hub. Each hop to a thread costs the request a round of the hub (docs/performance.md).
    """

    __slots__ = ()

    def cursor(self, *args: Any) -> ThreadedCursor:
        return ThreadedCursor(self._target.cursor(*args))

    def execute(self, sql: str, *args: Any) -> ThreadedCursor:
        return ThreadedCursor(_run(self._target.execute, sql, *args))

    def commit(self) -> None:
        if self._target.in_transaction:
            call(self._target.commit)

    def rollback(self) -> None:
        if self._target.in_transaction:
            call(self._target.rollback)

    def close(self) -> None:
        call(self._target.close)


class ThreadedCursor(_Proxy):
    __slots__ = ()

    def execute(self, sql: str, *args: Any) -> ThreadedCursor:
        _run(self._target.execute, sql, *args)
        return self

    def executemany(self, *args: Any) -> ThreadedCursor:
        call(self._target.executemany, *args)
        return self

    def executescript(self, *args: Any) -> ThreadedCursor:
        call(self._target.executescript, *args)
        return self

    def __iter__(self) -> Any:
        return iter(self._target)


def _run(execute: Callable[..., T], sql: str, *args: Any) -> T:
    if sql.lstrip()[:6].upper() == "SELECT":
        return execute(sql, *args)
    return call(execute, sql, *args)


def _psycopg_waits_on_the_hub() -> None:
    # psycopg picks its wait function once, at import: the C one, which blocks in poll(), unless
    # it recognises monkey patching, as it does gevent's but not eventlet's. Under eventlet
    # select.select is green, and wait_select (the one psycopg itself takes where the default
    # selector is select()'s, as eventlet makes it) then parks the green thread on the hub.
    # Connection.wait looks the module's ``wait`` up on every call (psycopg 3.3).
    from psycopg import waiting

    waiting.wait = waiting.wait_select
