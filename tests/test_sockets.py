"""Socket handlers against the real subscriber and Redis, with Flask-SocketIO's test client."""

from datetime import timedelta

import pytest
from sqlalchemy import update

from app.channel import publish
from app.extensions import db, socketio
from app.models import Login, Task, utcnow
from app.sansio.events import TASK_PROGRESS, ChannelMessage
from tests.support import wait_for


def progress_events(sio_client):
    return [e["args"][0] for e in sio_client.get_received() if e["name"] == TASK_PROGRESS]


@pytest.fixture
def tokens(token_for):
    return {name: token_for(name) for name in ("alice", "bob")}


def test_unauthenticated_connection_is_refused(app):
    assert not socketio.test_client(app).is_connected()
    assert not socketio.test_client(app, auth={"token": "forged"}).is_connected()
    assert not socketio.test_client(app, auth="just a string").is_connected()


def test_browser_session_authenticates(app, client, auth):
    auth.register("alice")
    auth.login("alice")
    sio = socketio.test_client(app, flask_test_client=client)
    assert sio.is_connected()
    auth.logout()
    assert not socketio.test_client(app, flask_test_client=client).is_connected()


def test_connect_sends_a_snapshot_of_unfinished_tasks(app, tokens):
    alice_id, alice = tokens["alice"]
    with app.app_context():
        db.session.add_all(
            [
                Task(
                    id="run",
                    name="example_long_task",
                    user_id=alice_id,
                    status="running",
                    step=3,
                    total=10,
                    progress=30,
                    seq=4,
                ),
                Task(id="done", name="example_long_task", user_id=alice_id, status="succeeded", progress=100),
                Task(id="theirs", name="example_long_task", user_id=tokens["bob"][0], status="running"),
            ]
        )
        db.session.commit()
    events = progress_events(socketio.test_client(app, auth={"token": alice}))
    assert [(e["task_id"], e["status"], e["progress"], e["step"], e["seq"]) for e in events] == [
        ("run", "running", 30, 3, 4)
    ]


def test_channel_messages_reach_the_owner_only(app, tokens):
    (alice_id, alice), (_, bob) = tokens["alice"], tokens["bob"]
    alice_client = socketio.test_client(app, auth={"token": alice})
    bob_client = socketio.test_client(app, auth={"token": bob})
    with app.app_context():
        redis, channel = app.extensions["broker"].redis, app.extensions["broker"].keys.channel
    # A message this server cannot read is dropped; the subscriber carries on with the next one.
    redis.publish(channel, b'{"v": 2, "user_id": 1}')
    publish(redis, channel, ChannelMessage(alice_id, TASK_PROGRESS, {"task_id": "t1", "seq": 9}))

    got = []
    wait_for(lambda: got.extend(progress_events(alice_client)) or got, 10, "alice's event")
    assert got == [{"task_id": "t1", "seq": 9}]
    assert progress_events(bob_client) == []


def test_one_subscriber_per_process(app, tokens):
    for _ in range(3):
        assert socketio.test_client(app, auth={"token": tokens["alice"][1]}).is_connected()
    with app.app_context():
        redis, channel = app.extensions["broker"].redis, app.extensions["broker"].keys.channel
    assert redis.pubsub_numsub(channel) == [(channel.encode(), 1)]


def test_a_browser_socket_is_closed_when_its_login_expires(app, client, auth):
    auth.register("alice")
    auth.login("alice")
    with app.app_context():
        db.session.execute(update(Login).values(expires_at=utcnow() + timedelta(seconds=2)))
        db.session.commit()
    sio = socketio.test_client(app, flask_test_client=client)
    assert sio.is_connected()
    app.extensions["socket_expiry"].start()
    # The reason it is told is held end to end (tests/e2e/test_sessions.py, the token's expiry).
    wait_for(lambda: not sio.is_connected(), 30, "the socket to be closed at its login's expiry")
    assert not socketio.test_client(app, flask_test_client=client).is_connected()
