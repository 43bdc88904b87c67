"""Socket.IO packets that carry payloads already encoded as JSON, without encoding them again.

A job encodes each event's payload once, when it publishes it (app.sansio.events); a web
node wraps that text in a ``PreEncoded`` and emits it like any other argument. This
packet class (the server's ``serializer``) writes the text into the frame as it is, so
the wire carries exactly what ``json.dumps`` of the payload would have produced.

It also decodes what clients send, refusing (``Malformed``) anything a client of this
protocol never sends or that does not parse, so the server closes that socket.
"""

from __future__ import annotations

import json
from typing import Any

from socketio import packet

from app.sansio.guard import Malformed, within_depth

# What a client may send: binary packets and CONNECT_ERROR are the server's, or unused here.
CLIENT_PACKETS = frozenset({packet.CONNECT, packet.DISCONNECT, packet.EVENT, packet.ACK})


class PreEncoded(str):
    """JSON text of one event argument, sent verbatim."""

    __slots__ = ()


class Packet(packet.Packet):
    def encode(self) -> str | list[str | bytes]:
        data = self.data
        if (
            self.packet_type == packet.EVENT
            and self.id is None
            and isinstance(data, list)
            and len(data) == 2
            and isinstance(data[1], PreEncoded)
        ):
            namespace = "" if self.namespace in (None, "/") else self.namespace + ","
            return f"{packet.EVENT}{namespace}[{json.dumps(data[0])},{data[1]}]"
        return super().encode()

    def decode(self, encoded_packet: Any) -> int:
        if not isinstance(encoded_packet, str) or encoded_packet[:1] not in _CLIENT_TYPES:
            raise Malformed("not a Socket.IO packet a client sends")
        if not within_depth(encoded_packet):
            raise Malformed("nested too deeply")
        try:
            attachments = super().decode(encoded_packet)
        except (ValueError, IndexError, TypeError) as exc:
            raise Malformed(f"not a Socket.IO packet: {exc}") from None
        if self.packet_type == packet.EVENT and not (
            isinstance(self.data, list) and self.data and isinstance(self.data[0], str)
        ):
            raise Malformed("an event is a list that starts with its name")
        return attachments


_CLIENT_TYPES = frozenset(str(t) for t in CLIENT_PACKETS)
