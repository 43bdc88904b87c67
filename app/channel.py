"""The progress channel on Redis pub/sub: jobs publish, each Socket.IO process subscribes once.

Every web node receives every message and emits it to the owner's room on its own
sockets only (Flask-SocketIO here has no message queue), so a client hears each event
from exactly the node it is connected to.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from flask_socketio import SocketIO
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.broker import unless_away
from app.sansio.events import END_SESSION, ChannelMessage, Incoming, ProtocolError, decode, encode

log = logging.getLogger(__name__)


def publish(redis: Redis, channel: str, message: ChannelMessage) -> None:
    """Publish, or skip it while Redis is away: every event is committed before it is published,
    and a node that could not hear it catches its sockets up from the database."""
    unless_away(redis.publish, channel, encode(message), default=0)


def end_session(redis: Redis, channel: str, user_id: int, auth_id: str, reason: str) -> None:
    """Ask every web node to disconnect the sockets that authenticated with ``auth_id``."""
    publish(redis, channel, ChannelMessage(user_id, END_SESSION, {"auth_id": auth_id, "reason": reason}))


class Subscriber:
    """One per process: listens on the channel and hands each message to ``deliver``.

    Give it a client speaking RESP2 (``protocol=2``): under RESP3, redis-py's default since
    8.0, every pub/sub message also goes through the push-notification handlers, which
    format each one for a debug log, ~40 % more per message on the path every event takes.
    """

    RETRY_MIN = 0.1
    RETRY_MAX = 2.0
    # Under a flood Redis always has the next message ready, and a green thread that never
    # blocks never lets the socket writers run: yield to them every this many messages.
    YIELD_EVERY = 32
    # How often an idle listener looks up from Redis to see whether it should stop.
    POLL_INTERVAL = 1.0

    def __init__(
        self,
        socketio: SocketIO,
        redis: Redis,
        channel: str,
        deliver: Callable[[Incoming], None],
        on_subscribed: Callable[[], None] | None = None,
    ) -> None:
        self._socketio = socketio
        self._deliver_message = deliver
        # Told each time the subscription is confirmed, the first time included: whatever
        # was published while there was none never reached this process.
        self._on_subscribed = on_subscribed
        self._redis = redis
        self._channel = channel
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._started = False
        self._stopping = False
        self._delay = self.RETRY_MIN
        self._lost_at: float | None = None

    def ensure_started(self, timeout: float = 10.0) -> bool:
        """Start the listener once and wait until Redis confirms the subscription.

        Waiting matters: a client's snapshot is read from the database after this
        returns, so no event can fall between the snapshot and the live stream. While
        the channel is known to be down nobody waits: what is committed until it is heard
        again reaches the connection through the backfill, which runs on every subscribe.
        """
        with self._lock:
            if not self._started:
                self._started = True
                self._socketio.start_background_task(self._run)
        return self._lost_at is not None or self._subscribed.wait(timeout)

    def stop(self) -> None:
        self._stopping = True

    def _run(self) -> None:
        while not self._stopping:
            try:
                self._listen()
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                self._subscribed.clear()
                if self._lost_at is None:
                    # One line per outage, not one per try.
                    self._lost_at = time.monotonic()
                    log.warning("progress channel lost (%s); resubscribing with backoff", exc)
                self._socketio.sleep(self._delay)
                self._delay = min(self._delay * 2, self.RETRY_MAX)

    def _heard(self) -> None:
        self._subscribed.set()
        self._delay = self.RETRY_MIN
        if self._lost_at is not None:
            log.warning("progress channel back after %.1f s", time.monotonic() - self._lost_at)
            self._lost_at = None
        if self._on_subscribed is not None:
            self._on_subscribed()

    def _listen(self) -> None:
        pubsub = self._redis.pubsub()
        try:
            pubsub.subscribe(self._channel)
            # Replies are read straight off the connection: PubSub.get_message costs more per
            # message (a readiness check and a dict each) than the rest of the node's work on
            # it. What it would do besides, the health check, is done here while idle.
            connection = pubsub.connection
            delivered = 0
            while not self._stopping:
                if not connection.can_read(timeout=self.POLL_INTERVAL):
                    pubsub.check_health()
                    continue
                reply = connection.read_response()
                if reply[0] == b"message":
                    self._deliver(reply[2])
                    delivered += 1
                    if delivered % self.YIELD_EVERY == 0:
                        self._socketio.sleep(0)
                elif reply[0] == b"subscribe":
                    self._heard()
        finally:
            pubsub.close()

    def _deliver(self, data: bytes) -> None:
        try:
            message = decode(data)
        except ProtocolError as exc:
            log.warning("dropping a message on %s: %s", self._channel, exc)
            return
        self._deliver_message(message)
