"""Socket.IO packets that carry payloads already encoded as JSON, without encoding them again.

A job encodes each event's payload once, when it publishes it (app.sansio.events); a web
node wraps that text in a ``PreEncoded`` and emits it like any other argument. This
packet class (the server's ``serializer``) writes the text into the frame as it is, so
the wire carries exactly what ``json.dumps`` of the payload would have produced.
"""

from __future__ import annotations

import json

from socketio import packet


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
