import json

import pytest
from socketio import packet

from app.sansio.packet import Packet, PreEncoded

PAYLOAD = {"task_id": "t", "progress": 40, "message": 'ünïcode "quoted"\nline', "result": None}


def decoded(encoded):
    return packet.Packet(encoded_packet=encoded)


@pytest.mark.parametrize("namespace", [None, "/", "/admin"])
def test_pre_encoded_payload_goes_on_the_wire_as_the_same_json(namespace):
    text = PreEncoded(json.dumps(PAYLOAD, separators=(",", ":")))
    ours = Packet(packet.EVENT, namespace=namespace, data=["task_progress", text]).encode()
    standard = packet.Packet(packet.EVENT, namespace=namespace, data=["task_progress", PAYLOAD]).encode()
    assert ours == standard
    assert decoded(ours).data == ["task_progress", PAYLOAD]


def test_other_packets_are_encoded_as_socketio_does():
    for args in (
        {"data": ["task_progress", PAYLOAD]},
        {"data": ["ack_me", PreEncoded("{}")], "id": 3},
        {"data": ["two", PreEncoded("{}"), 1]},
    ):
        assert Packet(packet.EVENT, **args).encode() == packet.Packet(packet.EVENT, **args).encode()
