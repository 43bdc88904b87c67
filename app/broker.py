"""The app's one Redis connection pool and its RQ queue, created once per app."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import redis as redis_py
from flask import Flask, current_app
from redis import Redis
from redis.connection import parse_url
from redis.driver_info import DriverInfo
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue
from rq.serializers import JSONSerializer

from app.sansio.breaker import Breaker

log = logging.getLogger(__name__)
T = TypeVar("T")

# Jobs cross Redis as JSON: nothing a user sent is ever unpickled by a worker.
SERIALIZER = JSONSerializer

# What every connection announces with CLIENT SETINFO. Left to redis-py, each new connection
# looks its own version up with importlib.metadata (1-4 ms): once per job in a work horse,
# which inherits no usable connection from the worker it was forked from.
_DRIVER = DriverInfo(lib_version=redis_py.__version__)


# Redis not answering at all, as opposed to refusing a command.
AWAY = (RedisConnectionError, RedisTimeoutError)

# A request that needs Redis waits at most this long for it to connect, and for each reply
# (an RQ worker raises its own read timeout above its blocking dequeue's).
CONNECT_TIMEOUT = 2.0
REPLY_TIMEOUT = 5.0

# This process's view of Redis, for the calls that can do without it: a job's publishes
# and cancel checks, a web node's session-ended notices. A forked work horse inherits it.
_optional = Breaker(first=0.25, cap=1.0)


def unless_away(call: Callable[..., T], *args: Any, default: T) -> T:
    """``call(*args)``, or ``default`` while Redis is away.

    After a failure only one call per backoff period tries Redis; the others return at once,
    so a job whose Redis went away pays no connect timeout per report. One log line when
    Redis goes away, one when it answers again.
    """
    if not _optional.allows(time.monotonic()):
        return default
    try:
        result = call(*args)
    except AWAY as exc:
        if _optional.failed(time.monotonic()):
            log.warning("Redis unreachable (%s); publishes and cancel checks paused until it answers", exc)
        return default
    outage = _optional.succeeded(time.monotonic())
    if outage is not None:
        log.warning("Redis answers again after %.1f s; publishes and cancel checks resumed", outage)
    return result


def connect(url: str, **options: Any) -> Redis:
    """A client for ``url``: how the web app and its workers reach Redis."""
    return Redis.from_url(url, driver_info=_DRIVER, **options)


@dataclass(frozen=True)
class Keys:
    """Our own Redis keys and progress channel: a deployment is its queue name and its database.

    Keys live in the database, so the queue name is enough to tell two deployments' keys
    apart. Pub/sub channels are server-wide, blind to database numbers: the channel also
    names the database, so two deployments on one server never hear each other's events,
    whatever their queue names (the database number, digits only, ends the name, so no two
    pairs of namespace and database give one channel).
    """

    namespace: str
    db: int = 0

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> Keys:
        """The names a deployment configured like ``config`` uses: web nodes and workers alike."""
        return cls(config["TASK_QUEUE"], int(parse_url(config["REDIS_URL"]).get("db", 0)))

    @property
    def channel(self) -> str:
        return f"{self.namespace}:progress:db{self.db}"

    def cancel(self, task_id: str) -> str:
        return f"{self.namespace}:cancel:{task_id}"

    def lease(self, task_id: str) -> str:
        return f"{self.namespace}:lease:{task_id}"

    def requeued(self, task_id: str, attempt: int) -> str:
        return f"{self.namespace}:requeued:{task_id}:{attempt}"

    @property
    def watchdog(self) -> str:
        return f"{self.namespace}:watchdog"


@dataclass(frozen=True)
class _State:
    redis: Redis
    queue: Queue
    keys: Keys


def make_queue(name: str, redis: Redis) -> Queue:
    return Queue(name, connection=redis, serializer=SERIALIZER)


class Broker:
    def init_app(self, app: Flask) -> None:
        redis = connect(
            app.config["REDIS_URL"],
            health_check_interval=30,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=REPLY_TIMEOUT,
        )
        keys = Keys.of(app.config)
        app.extensions["broker"] = _State(redis, make_queue(keys.namespace, redis), keys)

    @property
    def redis(self) -> Redis:
        return current_app.extensions["broker"].redis

    @property
    def queue(self) -> Queue:
        return current_app.extensions["broker"].queue

    @property
    def keys(self) -> Keys:
        return current_app.extensions["broker"].keys
