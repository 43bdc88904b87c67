"""The progress channel's subscriber: every message, in order, to the fan-out; it survives a lost connection."""

import socket
import time

import pytest
from redis import Redis

from app.broker import Keys, connect
from app.channel import Subscriber, publish
from app.extensions import socketio
from app.sansio.events import TASK_PROGRESS, ChannelMessage, encode
from tests.support import wait_for


def _listeners(redis: Redis, name: str) -> list[dict]:
    return [c for c in redis.client_list(_type="pubsub") if c["name"] == name]


@pytest.fixture
def received(app, redis, redis_url, unique):
    messages = []
    # Named, so that the test can find its connection among the server's clients.
    subscription = Redis.from_url(redis_url, health_check_interval=30, protocol=2, client_name=unique)
    subscriber = Subscriber(socketio, subscription, unique, messages.append)
    assert subscriber.ensure_started()
    yield messages
    subscriber.stop()
    wait_for(lambda: not _listeners(redis, unique), 10, "the listener to stop")
    subscription.close()


def _message(user_id: int, seq: int) -> bytes:
    return encode(ChannelMessage(user_id, TASK_PROGRESS, {"seq": seq, "step": seq}))


def test_every_message_reaches_the_fan_out_in_order(redis, unique, received):
    for seq in range(1, 201):
        redis.publish(unique, _message(seq % 3, seq))
    wait_for(lambda: len(received) == 200, 10, "200 messages")
    assert [(m.user_id, m.seq) for m in received] == [(seq % 3, seq) for seq in range(1, 201)]
    assert received[0].data() == {"seq": 1, "step": 1}


def test_a_malformed_message_is_dropped_and_the_next_one_delivered(redis, unique, received):
    redis.publish(unique, b"not a channel message")
    redis.publish(unique, _message(1, 1))
    wait_for(lambda: received, 10, "the good message")
    assert [m.seq for m in received] == [1]


def test_a_lost_connection_is_subscribed_again(redis, unique, received, caplog):
    redis.publish(unique, _message(1, 1))
    wait_for(lambda: received, 10, "the first message")
    (listener,) = _listeners(redis, unique)
    redis.client_kill_filter(_id=listener["id"])

    def delivered_after_loss():
        redis.publish(unique, _message(1, 2))
        return [m.seq for m in received if m.seq == 2]

    wait_for(delivered_after_loss, 15, "a message after the connection was lost", interval=0.2)
    assert "progress channel lost" in caplog.text


@pytest.fixture
def hung_redis():
    """A real TCP server that accepts connections and never answers: a Redis that hangs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    client = connect(f"redis://127.0.0.1:{server.getsockname()[1]}/0", socket_timeout=0.3)
    yield client
    client.close()
    server.close()


def test_publishing_while_redis_hangs_costs_one_timeout_per_backoff_not_one_per_event(
    hung_redis, redis, unique
):
    started = time.monotonic()
    for seq in range(1, 41):
        publish(hung_redis, unique, ChannelMessage(1, TASK_PROGRESS, {"seq": seq}))
    # One 0.3 s timeout per event would be 12 s; the job must not feel the outage.
    assert time.monotonic() - started < 6
    # Publishes on a Redis that answers go through again once the backoff (at most 1 s) is over.
    subscription = redis.pubsub()
    subscription.subscribe(unique)
    wait_for(lambda: subscription.get_message(timeout=0.1), 5, "the subscription")

    def heard() -> dict | None:
        publish(redis, unique, ChannelMessage(1, TASK_PROGRESS, {"seq": 41}))
        return subscription.get_message(timeout=0.1)

    message = wait_for(heard, 10, "a publish to go through again", interval=0.1)
    assert b'"seq":41' in message["data"]
    subscription.close()


@pytest.mark.parametrize(
    ("url", "db"),
    [
        ("redis://127.0.0.1:6379", 0),
        ("redis://127.0.0.1:6379/0", 0),
        ("redis://127.0.0.1:6379/1", 1),
        ("redis://:secret@redis.internal:6380/12", 12),
        ("rediss://redis.internal/3?db=4", 4),
        ("unix:///run/redis.sock?db=2", 2),
    ],
)
def test_the_channel_names_the_database_the_client_uses(url, db):
    keys = Keys.of({"TASK_QUEUE": "microblog-tasks", "REDIS_URL": url})
    assert keys.db == db == Redis.from_url(url).connection_pool.connection_kwargs.get("db", 0)
    assert keys.channel == f"microblog-tasks:progress:db{db}"


# Queue names chosen to collide under a naive rule (the queue and the number run together).
QUEUES = [
    "microblog-tasks",
    "a",
    "a:progress",
    "a:progress:db",
    "a:progress:db1",
    "a:progress:db1:progress:db",
]


def test_no_two_deployments_on_one_server_share_a_channel():
    deployments = [(queue, db) for queue in QUEUES for db in (0, 1, 10, 11, 15)]
    channels = {Keys(queue, db).channel for queue, db in deployments}
    assert len(channels) == len(deployments)
    for queue, db in deployments:
        # The deployment can be read back from its channel: the rule is one-to-one.
        namespace, _, number = Keys(queue, db).channel.rpartition(":progress:db")
        assert (namespace, int(number)) == (queue, db)
