"""The app's one Redis connection pool and its RQ queue, created once per app."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app
from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer

# Jobs cross Redis as JSON: nothing a user sent is ever unpickled by a worker.
SERIALIZER = JSONSerializer


@dataclass(frozen=True)
class _State:
    redis: Redis
    queue: Queue


def make_queue(name: str, redis: Redis) -> Queue:
    return Queue(name, connection=redis, serializer=SERIALIZER)


class Broker:
    def init_app(self, app: Flask) -> None:
        redis = Redis.from_url(app.config["REDIS_URL"], health_check_interval=30)
        app.extensions["broker"] = _State(redis, make_queue(app.config["TASK_QUEUE"], redis))

    @property
    def redis(self) -> Redis:
        return current_app.extensions["broker"].redis

    @property
    def queue(self) -> Queue:
        return current_app.extensions["broker"].queue
