"""The CLI's resume point and per-task newest state (docs/protocol.md, "Ordering"), in any handling order."""

from __future__ import annotations

import random

import pytest

from cli.seq import SeqTracker, Verdict

LATEST, STALE, DUPLICATE = Verdict.LATEST, Verdict.STALE, Verdict.DUPLICATE


def test_a_first_connection_starts_at_the_welcome_and_advances_with_each_event():
    t = SeqTracker()
    t.welcome(5)
    assert [t.accept("a", s) for s in (6, 7, 8)] == [LATEST] * 3
    assert t.last_seq == 8


def test_the_resume_point_waits_for_a_gap_to_fill():
    t = SeqTracker(5)
    assert t.accept("a", 6) is LATEST
    assert t.accept("b", 8) is LATEST
    assert t.last_seq == 6, "8 is held above the gap"
    assert t.accept("a", 7) is LATEST
    assert t.last_seq == 8


def test_an_event_received_twice_is_a_duplicate_below_and_above_the_resume_point():
    t = SeqTracker(5)
    for seq in (6, 7, 9):
        t.accept("a" if seq < 9 else "b", seq)
    assert t.accept("a", 7) is DUPLICATE, "replayed after a reconnect"
    assert t.accept("b", 9) is DUPLICATE, "held above the gap, then replayed"
    assert t.last_seq == 7


def test_a_snapshot_shows_unknown_tasks_and_leaves_the_resume_point_alone():
    t = SeqTracker()
    t.welcome(10)
    assert t.accept("a", 9) is LATEST, "a snapshot of a task this client has not seen"
    assert t.accept("b", 4) is LATEST
    assert t.last_seq == 10
    assert t.accept("a", 9) is DUPLICATE, "the same snapshot again, after a reconnect"
    assert t.accept("a", 11) is LATEST
    assert t.accept("a", 9) is DUPLICATE, "a snapshot older than what is shown"


def test_a_resumed_connection_ignores_the_welcome_seq():
    t = SeqTracker(3)
    t.welcome(40)
    assert t.last_seq == 3
    assert t.accept("a", 4) is LATEST


def test_events_handled_before_their_welcome_wait_for_it():
    t = SeqTracker()
    assert t.accept("a", 9) is LATEST, "a snapshot event that overtook the welcome"
    assert t.accept("a", 11) is LATEST
    assert t.last_seq is None
    t.welcome(10)
    assert t.last_seq == 11
    assert t.accept("a", 11) is DUPLICATE


def test_an_older_event_of_a_task_that_arrives_late_is_new_but_stale():
    t = SeqTracker(5)
    assert t.accept("a", 7) is LATEST
    assert t.accept("a", 6) is STALE, "never received before: printed, but the newer state stays shown"
    assert t.last_seq == 7
    assert t.accept("a", 6) is DUPLICATE


def test_resync_moves_the_resume_point_and_keeps_what_is_above_it():
    t = SeqTracker(5)
    t.accept("a", 8)
    t.accept("b", 22)  # handled before the resync that preceded it on the wire
    t.resync(20)
    assert t.last_seq == 20
    assert t.accept("c", 21) is LATEST
    assert t.last_seq == 22
    assert t.accept("a", 8) is DUPLICATE, "the snapshot of a task already shown at that seq"
    assert t.accept("a", 15) is LATEST, "the snapshot of a task that moved on while we were away"


def test_resync_to_an_older_seq_forgets_a_history_the_server_no_longer_has():
    t = SeqTracker(50)
    t.accept("a", 51)
    t.resync(3)  # unknown_seq: the server's seqs start over
    assert t.last_seq == 3
    assert t.accept("a", 4) is LATEST
    assert t.last_seq == 4


def test_ticks_show_progress_and_never_move_the_resume_point():
    t = SeqTracker(5)
    assert t.accept("a", 6, ts=1.0) is LATEST
    assert t.accept("a", 6, volatile=True, ts=1.2) is LATEST
    assert t.accept("a", 6, volatile=True, ts=1.4) is LATEST
    assert t.last_seq == 6
    assert t.accept("a", 6, volatile=True, ts=1.3) is STALE, "an older tick"
    assert t.accept("a", 6, volatile=True, ts=1.4) is DUPLICATE, "the tick shown, again"
    assert t.accept("a", 7, ts=1.5) is LATEST
    assert t.accept("a", 6, volatile=True, ts=1.45) is STALE, "a tick older than the next stored event"
    assert t.last_seq == 7


def test_a_stored_event_handled_after_its_tick_counts_for_resuming_but_does_not_replace_it():
    t = SeqTracker(5)
    assert t.accept("a", 6, volatile=True, ts=2.0) is LATEST
    assert t.last_seq == 5, "a tick is not the stored event"
    assert t.accept("a", 6, ts=1.9) is STALE
    assert t.last_seq == 6
    assert t.accept("a", 6, ts=1.9) is DUPLICATE


def test_a_tick_before_any_stored_event_of_its_task_is_shown():
    t = SeqTracker()
    t.welcome(3)
    assert t.accept("a", 2, volatile=True, ts=5.0) is LATEST
    assert t.last_seq == 3


@pytest.mark.parametrize("seed", range(20))
def test_any_handling_order_with_replays_accepts_each_stored_event_exactly_once(seed):
    rng = random.Random(seed)
    seqs = list(range(1, 61))
    tasks = {seq: "abc"[seq % 3] for seq in seqs}
    # Duplicates as a reconnect replays them, then a shuffle as handler threads might run them.
    stream = seqs + rng.sample(seqs, 25)
    rng.shuffle(stream)
    t = SeqTracker()
    t.welcome(0)
    accepted = [seq for seq in stream if t.accept(tasks[seq], seq) is not DUPLICATE]
    assert sorted(accepted) == seqs
    assert t.last_seq == 60
    newest = {task: max(s for s in seqs if tasks[s] == task) for task in "abc"}
    assert all(t.accept(task, seq) is DUPLICATE for task, seq in newest.items())
