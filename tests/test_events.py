import json

import pytest

from app.sansio.events import (
    CHANNEL_VERSION,
    END_SESSION,
    TASK_PROGRESS,
    ChannelMessage,
    ProtocolError,
    decode,
    encode,
    percent,
)


def test_round_trip():
    data = {"task_id": "t", "progress": 40, "seq": 3, "volatile": False, "message": "50 % done\nnext"}
    incoming = decode(encode(ChannelMessage(7, TASK_PROGRESS, data)))
    assert (incoming.user_id, incoming.event, incoming.seq, incoming.volatile) == (7, TASK_PROGRESS, 3, False)
    assert incoming.data() == data


def test_a_node_gets_the_payload_as_the_json_text_the_job_wrote():
    data = {"task_id": "t", "seq": 4, "volatile": True, "message": "é"}
    incoming = decode(encode(ChannelMessage(1, TASK_PROGRESS, data)))
    assert incoming.volatile is True
    assert incoming.body == json.dumps(data, separators=(",", ":"))


def test_the_header_line_carries_the_version_and_the_routing():
    header, _, body = encode(ChannelMessage(1, END_SESSION, {"auth_id": "a"})).partition(b"\n")
    assert json.loads(header) == {
        "v": CHANNEL_VERSION,
        "user_id": 1,
        "event": END_SESSION,
        "seq": None,
        "volatile": False,
    }
    assert json.loads(body) == {"auth_id": "a"}


def _raw(header: dict, body: str = "{}") -> str:
    return (
        json.dumps(
            {
                "v": CHANNEL_VERSION,
                "user_id": 1,
                "event": TASK_PROGRESS,
                "seq": 1,
                "volatile": False,
                **header,
            }
        )
        + "\n"
        + body
    )


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\x80\x04pickle", "not UTF-8"),
        (b"not json\n{}", "header is not JSON"),
        (b"[1, 2]\n{}", "not a JSON object"),
        (json.dumps({"v": 1, "user_id": 1, "event": TASK_PROGRESS, "data": {}}), "unsupported version"),
        (_raw({"v": 99}), "unsupported version"),
        (_raw({"user_id": "1"}), "user_id"),
        (_raw({"user_id": True}), "user_id"),
        (_raw({"event": "shutdown"}), "unknown event"),
        (_raw({"seq": "3"}), "seq"),
        (_raw({"seq": None}), "needs a seq"),
        (_raw({"volatile": 0}), "volatile"),
        (_raw({}, "[]"), "data"),
        (_raw({}, ""), "data"),
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
