"""The app's one Redis connection pool and its RQ queue, created once per app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis as redis_py
from flask import Flask, current_app
from redis import Redis
from redis.driver_info import DriverInfo
from rq import Queue
from rq.serializers import JSONSerializer

# Jobs cross Redis as JSON: nothing a user sent is ever unpickled by a worker.
SERIALIZER = JSONSerializer

# What every connection announces with CLIENT SETINFO. Left to redis-py, each new connection
# looks its own version up with importlib.metadata (1-4 ms): once per job in a work horse,
# which inherits no usable connection from the worker it was forked from.
_DRIVER = DriverInfo(lib_version=redis_py.__version__)


def connect(url: str, **options: Any) -> Redis:
    """A client for ``url``: how the web app and its workers reach Redis."""
    return Redis.from_url(url, driver_info=_DRIVER, **options)


@dataclass(frozen=True)
class Keys:
    """Our own Redis keys, namespaced by the queue so that two deployments never mix."""

    namespace: str

    def cancel(self, task_id: str) -> str:
        return f"{self.namespace}:cancel:{task_id}"

    def lease(self, task_id: str) -> str:
        return f"{self.namespace}:lease:{task_id}"

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
        redis = connect(app.config["REDIS_URL"], health_check_interval=30)
        name = app.config["TASK_QUEUE"]
        app.extensions["broker"] = _State(redis, make_queue(name, redis), Keys(name))

    @property
    def redis(self) -> Redis:
        return current_app.extensions["broker"].redis

    @property
    def queue(self) -> Queue:
        return current_app.extensions["broker"].queue

    @property
    def keys(self) -> Keys:
        return current_app.extensions["broker"].keys
