import json

import pytest

from app.sansio.events import (
    CHANNEL_VERSION,
    TASK_PROGRESS,
    ChannelMessage,
    ProtocolError,
    decode,
    encode,
    percent,
)


def test_round_trip():
    message = ChannelMessage(7, TASK_PROGRESS, {"task_id": "t", "progress": 40, "seq": 3})
    assert decode(encode(message)) == message


def test_encoded_message_is_versioned_json():
    obj = json.loads(encode(ChannelMessage(1, TASK_PROGRESS, {})))
    assert obj == {"v": CHANNEL_VERSION, "user_id": 1, "event": TASK_PROGRESS, "data": {}}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\x80\x04pickle", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (json.dumps({"v": 99, "user_id": 1, "event": TASK_PROGRESS, "data": {}}), "unsupported version"),
        (json.dumps({"v": 1, "user_id": "1", "event": TASK_PROGRESS, "data": {}}), "user_id"),
        (json.dumps({"v": 1, "user_id": True, "event": TASK_PROGRESS, "data": {}}), "user_id"),
        (json.dumps({"v": 1, "user_id": 1, "event": "shutdown", "data": {}}), "unknown event"),
        (json.dumps({"v": 1, "user_id": 1, "event": TASK_PROGRESS, "data": []}), "data"),
    ],
)
def test_malformed_messages_are_refused(raw, reason):
    with pytest.raises(ProtocolError, match=reason):
        decode(raw)


@pytest.mark.parametrize(
    ("step", "total", "expected"),
    [(0, 10, 0), (1, 10, 10), (1, 3, 33), (3, 3, 100), (5, 0, 0), (11, 10, 100), (-1, 10, 0)],
)
def test_percent(step, total, expected):
    assert percent(step, total) == expected
