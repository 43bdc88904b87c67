"""``python -m worker.health``: exit 0 when a worker on this host is registered with Redis.

The container health check: a worker that lost Redis or hung before registering is restarted.
"""

from __future__ import annotations

import socket
import sys

from redis import Redis
from redis.exceptions import RedisError
from rq import Worker

import config as settings


def main() -> int:
    config = settings.from_env()
    try:
        # Not app.broker.connect: importing the app would cost this check ~0.8 s and 60 MB every
        # time it runs, and its one connection does not care about redis-py's version lookup.
        redis = Redis.from_url(config["REDIS_URL"], socket_connect_timeout=3)
        workers = Worker.all(connection=redis)
    except RedisError as exc:
        print(f"redis unreachable: {exc}", file=sys.stderr)
        return 1
    host = socket.gethostname()
    mine = [w for w in workers if w.hostname == host and config["TASK_QUEUE"] in w.queue_names()]
    if not mine:
        print(f"no worker registered from {host}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
