"""What a client may send (app/sansio/guard.py, app/sansio/packet.py): allowances, and parsers
that answer every input with a packet or ``Malformed``, never anything else."""

from __future__ import annotations

import contextlib
import json

from hypothesis import given
from hypothesis import strategies as st
from socketio import packet

from app.sansio.guard import (
    EVENT_BURST,
    EVENTS_PER_SECOND,
    MAX_JSON_DEPTH,
    RESUME_INTERVAL,
    ClientLimits,
    Malformed,
    TokenBucket,
    engineio_packet,
    within_depth,
)
from app.sansio.packet import Packet


def test_a_bucket_takes_a_burst_then_its_rate():
    bucket = TokenBucket(rate=2, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert not bucket.take(0.4)
    assert bucket.take(0.5)
    # Idle time refills it up to the burst, no further.
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]


def test_a_client_that_sends_at_the_sustained_rate_is_never_cut_off():
    limits = ClientLimits(now=0.0)
    assert all(limits.event(i / EVENTS_PER_SECOND) for i in range(1_000))


def test_a_burst_past_the_allowance_is_a_flood():
    limits = ClientLimits(now=0.0)
    assert [limits.event(0.0) for _ in range(EVENT_BURST + 1)] == [True] * EVENT_BURST + [False]


def test_one_resume_per_interval():
    limits = ClientLimits(now=0.0)
    times = [0.0, 0.1, RESUME_INTERVAL - 0.01, RESUME_INTERVAL, RESUME_INTERVAL + 0.5, 3 * RESUME_INTERVAL]
    assert [limits.resume(t) for t in times] == [True, False, False, True, False, True]


def _depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    return 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet=st.sampled_from('ab"\\[]{}\n')),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=60,
)


@given(json_values, st.integers(min_value=0, max_value=8))
def test_depth_is_counted_without_parsing_and_brackets_in_strings_do_not_count(value, limit):
    assert within_depth(json.dumps(value), limit) == (_depth(value) <= limit)


def test_depth_past_the_limit_is_found_in_large_text():
    deep = "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)
    assert not within_depth(deep)
    assert within_depth(json.dumps(["[" * 10_000, {"a": "{" * 10_000}]))


@given(st.one_of(st.text(), st.binary()))
def test_any_engineio_frame_decodes_or_is_malformed(frame):
    with contextlib.suppress(Malformed):
        engineio_packet(frame)


@given(st.text())
def test_any_socketio_packet_decodes_or_is_malformed(text):
    try:
        decoded = Packet(encoded_packet=text)
    except Malformed:
        return
    if text:
        assert decoded.packet_type in (packet.CONNECT, packet.DISCONNECT, packet.EVENT, packet.ACK)


@given(st.sampled_from("0123"), st.integers(min_value=MAX_JSON_DEPTH + 1, max_value=50_000))
def test_deep_nesting_is_malformed_before_it_is_parsed(kind, depth):
    try:
        Packet(encoded_packet=kind + "[" * depth + "]" * depth)
    except Malformed as exc:
        assert "deep" in str(exc)
    else:
        raise AssertionError("decoded")


def test_what_clients_send_decodes():
    assert Packet(encoded_packet='2["resume",{"last_seq":3}]').data == ["resume", {"last_seq": 3}]
    assert Packet(encoded_packet='0{"token":"t","last_seq":0}').data == {"token": "t", "last_seq": 0}
    assert engineio_packet('42["resume",{"last_seq":3}]').data == '2["resume",{"last_seq":3}]'
    assert engineio_packet("3").packet_type == 3
