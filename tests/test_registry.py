import json

from app.sansio.events import TASK_PROGRESS, Incoming
from app.sansio.registry import Registry


def event(seq, *, volatile=False, step=0, user_id=1):
    body = json.dumps({"task_id": "t", "seq": seq, "volatile": volatile, "step": step})
    return Incoming(user_id, TASK_PROGRESS, seq, volatile, body)


def test_live_events_are_buffered_during_replay_and_drained_past_the_floor_in_order():
    registry = Registry()
    registry.add("a", 1, "tok")
    for seq in (7, 5, 6, 9, 8):
        assert registry.route(event(seq)) == []
    assert [e.seq for e in registry.end_replay("a", floor=6)] == [7, 8, 9]
    # Live now: sent at once, unless the replay already covered it.
    assert registry.route(event(10)) == ["a"]
    assert registry.route(event(6)) == []


def test_a_duplicate_seq_is_sent_once():
    registry = Registry()
    registry.add("a", 1, "tok")
    registry.route(event(3))
    registry.route(event(3))
    assert registry.end_replay("a", floor=0) == [event(3)]


def test_buffers_are_per_user_and_per_connection():
    registry = Registry()
    registry.add("a", 1, "tok")
    registry.add("b", 2, "tok2")
    registry.add("c", 1, "session")
    registry.end_replay("c", floor=0)
    assert registry.route(event(1)) == ["c"]
    assert registry.end_replay("b", floor=0) == []
    assert registry.end_replay("a", floor=0) == [event(1)]
    registry.begin_replay("c")
    registry.route(event(2))
    assert registry.end_replay("c", floor=0) == [event(2)]


def test_sessions_find_the_sockets_of_one_token():
    registry = Registry()
    registry.add("a", 1, "tok")
    registry.add("b", 1, "tok")
    registry.add("c", 1, "other")
    registry.add("d", 2, "tok")
    assert registry.sessions(1, "tok") == ["a", "b"]
    registry.remove("a")
    registry.remove("a")
    assert registry.sessions(1, "tok") == ["b"]
    assert len(registry) == 3


def test_volatile_ticks_pass_the_floor_and_follow_their_stored_event():
    registry = Registry()
    registry.add("a", 1, "tok")
    registry.route(event(4, volatile=True, step=1))
    registry.route(event(5, step=2))
    registry.route(event(5, volatile=True, step=3))
    registry.route(event(5, volatile=True, step=4))
    drained = registry.end_replay("a", floor=5)
    assert [(e.seq, e.data()["step"]) for e in drained] == [(4, 1), (5, 3), (5, 4)]
    assert registry.route(event(5, volatile=True, step=5)) == ["a"]
    assert registry.route(event(5, step=5)) == []


def test_a_connection_holds_stored_events_up_to_the_first_gap():
    registry = Registry()
    registry.add("a", 1, "tok")
    registry.end_replay("a", floor=4)
    for seq in (5, 7, 8):
        assert registry.route(event(seq)) == ["a"]
    assert registry.holding() == {1: 5}
    assert registry.behind(1, 8) == ["a"]
    assert registry.behind(1, 5) == []
    # The lost publish of 6 arrives late after all: the watermark closes over 7 and 8.
    registry.route(event(6))
    assert registry.holding() == {1: 8}
    assert registry.behind(1, 8) == []


def test_a_backfill_replays_the_gap_and_keeps_what_arrived_out_of_order():
    registry = Registry()
    registry.add("a", 1, "tok")
    registry.end_replay("a", floor=2)
    registry.route(event(3))
    registry.route(event(6))
    held = registry.begin_backfill("a")
    assert (held.upto, held.ahead, held.floor) == (3, frozenset({6}), 2)
    # A second backfill (or a replaying connection) is not started twice.
    assert registry.begin_backfill("a") is None
    assert registry.behind(1, 10) == [] and registry.holding() == {}
    # Live events during the backfill wait; the replay (4..7, without 6) covers up to 7.
    assert registry.route(event(7)) == []
    assert registry.route(event(8)) == []
    assert [e.seq for e in registry.end_replay("a", floor=7)] == [8]
    assert registry.holding() == {1: 8}
    assert registry.route(event(7)) == []


def test_a_failed_backfill_goes_live_keeping_what_the_connection_held():
    registry = Registry()
    registry.add("a", 1, "tok")
    registry.end_replay("a", floor=2)
    registry.route(event(5))
    held = registry.begin_backfill("a")
    registry.route(event(6))
    assert [e.seq for e in registry.end_replay("a", floor=held.floor)] == [6]
    assert registry.holding() == {1: 2}
    assert registry.behind(1, 6) == ["a"]
    registry.route(event(3))
    registry.route(event(4))
    assert registry.holding() == {1: 6}


def test_replaying_and_departed_connections_are_not_backfilled():
    registry = Registry()
    registry.add("a", 1, "tok")
    assert registry.begin_backfill("a") is None
    assert registry.begin_backfill("gone") is None
    assert registry.end_replay("gone", floor=3) == []


def test_connections_are_handed_out_once_when_their_credential_expires():
    registry = Registry()
    registry.add("soon", 1, "tok", expires_at=100.0)
    registry.add("later", 1, "login", expires_at=200.0)
    registry.add("never", 2, "tok2")
    registry.add("gone", 2, "tok2", expires_at=50.0)
    registry.remove("gone")
    assert registry.expired(99.0) == []
    assert registry.expired(150.0) == ["soon"]
    assert registry.expired(150.0) == []
    assert registry.expired(1e12) == ["later"]


def test_expiries_of_closed_connections_do_not_pile_up():
    registry = Registry()
    registry.add("kept", 1, "tok", expires_at=1e12)
    for n in range(10_000):
        registry.add(f"s{n}", 1, "tok", expires_at=1e12 + n)
        registry.remove(f"s{n}")
    assert len(registry._expiries) < 100
    assert registry.expired(2e12) == ["kept"]


def test_a_resume_does_not_start_while_another_replay_or_a_backfill_runs():
    registry = Registry()
    registry.add("a", 1, "tok")
    # Its connect's replay is still being sent.
    assert not registry.begin_replay("a")
    registry.end_replay("a", floor=2)
    assert registry.begin_replay("a")
    assert not registry.begin_replay("a"), "two resumes at once"
    registry.route(event(3))
    assert [e.seq for e in registry.end_replay("a", floor=2)] == [3]
    assert registry.begin_backfill("a") is not None
    assert not registry.begin_replay("a"), "a resume during the backfill's replay"
    registry.end_replay("a", floor=3)
    assert not registry.begin_replay("gone")
