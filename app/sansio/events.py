"""The progress message format: what a job publishes and what a socket client receives.

A channel message is two lines: a header a web node routes on, then the client payload::

    {"v":2,"user_id":7,"event":"task_progress","seq":12,"volatile":false}
    {...the task_progress payload, JSON...}

    {"v":2,"user_id":7,"event":"end_session","seq":null,"volatile":false}
    {"auth_id":"...","reason":"token_revoked"}

The header carries everything routing needs, so a node hands the payload line to the
sockets as the JSON text the job wrote, never decoding and re-encoding it: on the push
path that was most of a node's work per event. Compact JSON never contains a raw line
break, so the first one always ends the header. ``v`` lets a web node drop messages
from a newer or older worker instead of misreading them during a rolling upgrade.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from app.sansio import protocol

# Between jobs and web nodes only; clients see app.sansio.protocol's version instead.
CHANNEL_VERSION = 2
TASK_PROGRESS = protocol.TASK_PROGRESS
# A control message: web nodes disconnect the sockets of a revoked token or ended session.
END_SESSION = "end_session"
EVENTS = frozenset({TASK_PROGRESS, END_SESSION})


class ProtocolError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ChannelMessage:
    """What a publisher sends: one client event and its addressee."""

    user_id: int
    event: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Incoming:
    """What a web node receives: the routing header, and the payload still as JSON text."""

    user_id: int
    event: str
    # The stored event's seq (a volatile tick carries the seq of the last stored one);
    # None for control messages.
    seq: int | None
    volatile: bool
    body: str

    def data(self) -> dict[str, Any]:
        return json.loads(self.body)


def percent(step: int, total: int) -> int:
    if total <= 0:
        return 0
    return max(0, min(100, (step * 100) // total))


def encode(message: ChannelMessage) -> bytes:
    data = message.data
    seq = data.get("seq")
    header = {
        "v": CHANNEL_VERSION,
        "user_id": message.user_id,
        "event": message.event,
        "seq": seq if isinstance(seq, int) else None,
        "volatile": bool(data.get("volatile")),
    }
    return (_compact(header) + "\n" + _compact(data)).encode()


def _compact(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"))


def decode(raw: bytes | str) -> Incoming:
    try:
        text = raw.decode() if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"not UTF-8: {exc}") from None
    line, _, body = text.partition("\n")
    try:
        header = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError("header is not a JSON object")
    if header.get("v") != CHANNEL_VERSION:
        raise ProtocolError(f"unsupported version {header.get('v')!r}")
    user_id, event, seq, volatile = (header.get(k) for k in ("user_id", "event", "seq", "volatile"))
    if not _is_int(user_id):
        raise ProtocolError("user_id must be an integer")
    if event not in EVENTS:
        raise ProtocolError(f"unknown event {event!r}")
    if seq is not None and not _is_int(seq):
        raise ProtocolError("seq must be an integer or null")
    if event == TASK_PROGRESS and seq is None:
        raise ProtocolError("a task_progress message needs a seq")
    if not isinstance(volatile, bool):
        raise ProtocolError("volatile must be a boolean")
    # The payload is passed on unparsed; a check of its shape is what stays affordable.
    if not (body.startswith("{") and body.endswith("}")):
        raise ProtocolError("data must be a JSON object")
    return Incoming(user_id, event, seq, volatile, body)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
