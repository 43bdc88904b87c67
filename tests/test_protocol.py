"""The socket protocol against its declaration: schemas, replay without a seam, resync, session end."""

from __future__ import annotations

import threading
from datetime import timedelta

import jsonschema
import pytest
from sqlalchemy import delete, select, update

from app.commands import PROTOCOL_DOC, render_protocol_doc
from app.extensions import db, socketio
from app.models import Notification, Task, Token, User, utcnow
from app.progress import payload, report
from app.sansio.protocol import CLIENT_EVENTS, SERVER_EVENTS, TASK_PROGRESS_SCHEMA
from tests.support import wait_for


def test_the_document_is_generated_from_the_declaration():
    text = PROTOCOL_DOC.read_text()
    assert render_protocol_doc(text) == text, "run `flask protocol-doc` and commit docs/protocol.md"


def test_schemas_are_valid_json_schema():
    for schema in (*SERVER_EVENTS.values(), *CLIENT_EVENTS.values()):
        jsonschema.Draft202012Validator.check_schema(schema)


def received(client) -> list[tuple[str, dict]]:
    out = []
    for packet in client.get_received():
        name, data = packet["name"], packet["args"][0]
        jsonschema.validate(data, SERVER_EVENTS[name])
        out.append((name, data))
    return out


def seqs(events) -> list[int]:
    return [data["seq"] for name, data in events if name == "task_progress"]


@pytest.fixture
def alice(app, token_for):
    user_id, token = token_for("alice")
    with app.app_context():
        db.session.add(Task(id="t1", name="example_long_task", user_id=user_id))
        db.session.commit()
    return user_id, token


def emit_events(app, task_id: str, count: int) -> None:
    with app.app_context():
        task = db.session.get(Task, task_id)
        for i in range(count):
            report(task, step=i, total=count)


def newest_seq(app) -> int:
    with app.app_context():
        return db.session.scalar(select(User.last_seq).where(User.username == "alice"))


def test_payload_matches_the_schema_exactly(app, alice):
    with app.app_context():
        data = payload(db.session.get(Task, "t1"))
    jsonschema.validate(data, TASK_PROGRESS_SCHEMA)
    assert set(data) == set(TASK_PROGRESS_SCHEMA["properties"])


def test_first_connect_gets_welcome_then_a_snapshot(app, alice):
    user_id, token = alice
    emit_events(app, "t1", 3)
    events = received(socketio.test_client(app, auth={"token": token}))
    assert events[0] == ("welcome", {"protocol": 1, "user_id": user_id, "username": "alice", "last_seq": 3})
    assert [(name, data["task_id"], data["seq"]) for name, data in events[1:]] == [("task_progress", "t1", 3)]


def test_resume_replays_exactly_the_missed_events_in_order(app, alice):
    _, token = alice
    emit_events(app, "t1", 10)
    client = socketio.test_client(app, auth={"token": token, "last_seq": 4})
    events = received(client)
    assert events[0][0] == "welcome" and events[0][1]["last_seq"] == 10
    assert seqs(events) == [5, 6, 7, 8, 9, 10]
    # ... then live, once.
    emit_events(app, "t1", 2)
    live = []
    wait_for(lambda: live.extend(received(client)) or len(live) >= 2, 10, "live events")
    assert seqs(live) == [11, 12]


def test_resume_event_on_an_open_connection(app, alice):
    _, token = alice
    emit_events(app, "t1", 5)
    client = socketio.test_client(app, auth={"token": token})
    received(client)
    client.emit("resume", {"last_seq": 2})
    assert seqs(received(client)) == [3, 4, 5]
    client.emit("resume", {"last_seq": "2"})
    assert received(client) == [("protocol_error", {"event": "resume", "error": "invalid last_seq"})]


def test_no_gap_and_no_duplicate_at_the_seam_under_a_stream_of_events(app, alice):
    _, token = alice
    emit_events(app, "t1", 5)
    stream = threading.Thread(target=emit_events, args=(app, "t1", 150))
    stream.start()
    clients = []
    try:
        # Connect repeatedly while events are being committed and published, each time
        # resuming from a seq the server has (a client only knows seqs it was sent).
        for last_seq in range(5, 45, 4):
            wait_for(lambda last_seq=last_seq: newest_seq(app) >= last_seq, 10, f"seq {last_seq}")
            clients.append((last_seq, socketio.test_client(app, auth={"token": token, "last_seq": last_seq})))
    finally:
        stream.join(30)
    for last_seq, client in clients:
        got = []
        wait_for(
            lambda got=got, client=client: got.extend(seqs(received(client))) or (got and got[-1] == 155),
            15,
            "the stream's end",
        )
        assert got == list(range(last_seq + 1, 156)), f"resumed at {last_seq}"


@pytest.mark.parametrize(
    ("setup", "last_seq", "reason"),
    [
        (None, 99, "unknown_seq"),
        ("forget_old", 1, "retention"),
        ("limit", 0, "too_many"),
    ],
)
def test_unreplayable_resume_gets_resync_and_a_snapshot(app, alice, setup, last_seq, reason):
    _, token = alice
    emit_events(app, "t1", 6)
    with app.app_context():
        if setup == "forget_old":
            db.session.execute(delete(Notification).where(Notification.seq <= 3))
            db.session.commit()
    if setup == "limit":
        app.config["REPLAY_LIMIT"] = 5
    events = received(socketio.test_client(app, auth={"token": token, "last_seq": last_seq}))
    assert [name for name, _ in events] == ["welcome", "resync", "task_progress"]
    assert events[1][1] == {"reason": reason, "last_seq": 6}
    assert events[2][1]["task_id"] == "t1"


@pytest.mark.parametrize("last_seq", [-1, "3", 1.5, True])
def test_invalid_last_seq_is_refused(app, alice, last_seq):
    client = socketio.test_client(app, auth={"token": alice[1], "last_seq": last_seq})
    assert not client.is_connected()


def test_revoking_a_token_disconnects_its_sockets_only(app, client, alice, token_for):
    user_id, token = alice
    with app.app_context():
        other, _ = db.session.get(User, user_id).issue_token(60)
        db.session.commit()
    revoked = socketio.test_client(app, auth={"token": token})
    kept = socketio.test_client(app, auth={"token": other})
    received(revoked), received(kept)

    assert client.delete("/api/tokens", headers={"Authorization": f"Bearer {token}"}).status_code == 204
    wait_for(lambda: not revoked.is_connected(), 10, "the revoked socket to be disconnected")
    assert kept.is_connected()
    assert not socketio.test_client(app, auth={"token": token}).is_connected()


def test_logging_out_disconnects_that_browser_only(app, auth):
    auth.register("bob")
    first, second = app.test_client(), app.test_client()
    from tests.conftest import AuthActions

    AuthActions(first).login("bob")
    AuthActions(second).login("bob")
    sock1 = socketio.test_client(app, flask_test_client=first)
    sock2 = socketio.test_client(app, flask_test_client=second)
    assert sock1.is_connected() and sock2.is_connected()
    AuthActions(first).logout()
    wait_for(lambda: not sock1.is_connected(), 10, "the logged-out socket to be disconnected")
    assert sock2.is_connected()


def test_polling_returns_the_same_events(app, client, alice):
    _, token = alice
    emit_events(app, "t1", 4)
    headers = {"Authorization": f"Bearer {token}"}
    body = client.get("/api/notifications?since=1", headers=headers).json
    assert body["last_seq"] == 4
    assert [e["data"]["seq"] for e in body["events"]] == [2, 3, 4]
    socket_events = received(socketio.test_client(app, auth={"token": token, "last_seq": 1}))[1:]
    assert [e["data"] for e in body["events"]] == [data for _, data in socket_events]

    snapshot = client.get("/api/notifications", headers=headers).json
    assert [(e["event"], e["data"]["task_id"]) for e in snapshot["events"]] == [("task_progress", "t1")]
    assert client.get("/api/notifications?since=x", headers=headers).status_code == 400
    assert client.get("/api/notifications?since=-1", headers=headers).status_code == 400


def test_the_watchdog_forgets_old_events_and_expired_tokens(app, alice):
    from app.watchdog import Watchdog

    _, token = alice
    emit_events(app, "t1", 3)
    with app.app_context():
        db.session.execute(
            update(Notification).where(Notification.seq == 1).values(created_at=utcnow() - timedelta(days=30))
        )
        db.session.commit()
        Watchdog(app, socketio).tick()
        assert sorted(n.seq for n in db.session.query(Notification)) == [2, 3]
    events = received(socketio.test_client(app, auth={"token": token, "last_seq": 0}))
    assert events[1] == ("resync", {"reason": "retention", "last_seq": 3})


def test_an_expired_token_is_refused_at_connect(app, alice):
    user_id, token = alice
    with app.app_context():
        db.session.execute(update(Token).where(Token.user_id == user_id).values(expires_at=utcnow()))
        db.session.commit()
    client = socketio.test_client(app, auth={"token": token})
    assert not client.is_connected()
