"""The progress message format: what a job publishes and what a socket client receives.

A channel message wraps one client event with its addressee::

    {"v": 1, "user_id": 7, "event": "task_progress", "data": {...the client payload...}}
    {"v": 1, "user_id": 7, "event": "end_session", "data": {"auth_id": "...", "reason": "token_revoked"}}

``v`` lets a web node drop messages from a newer or older worker instead of
misreading them during a rolling upgrade.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from app.sansio import protocol

# Between jobs and web nodes only; clients see app.sansio.protocol's version instead.
CHANNEL_VERSION = 1
TASK_PROGRESS = protocol.TASK_PROGRESS
# A control message: web nodes disconnect the sockets of a revoked token or ended session.
END_SESSION = "end_session"
EVENTS = frozenset({TASK_PROGRESS, END_SESSION})


class ProtocolError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ChannelMessage:
    user_id: int
    event: str
    data: dict[str, Any]


def percent(step: int, total: int) -> int:
    if total <= 0:
        return 0
    return max(0, min(100, (step * 100) // total))


def encode(message: ChannelMessage) -> bytes:
    return json.dumps(
        {"v": CHANNEL_VERSION, "user_id": message.user_id, "event": message.event, "data": message.data},
        separators=(",", ":"),
    ).encode()


def decode(raw: bytes | str) -> ChannelMessage:
    try:
        obj = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("not a JSON object")
    if obj.get("v") != CHANNEL_VERSION:
        raise ProtocolError(f"unsupported version {obj.get('v')!r}")
    user_id, event, data = obj.get("user_id"), obj.get("event"), obj.get("data")
    if not isinstance(user_id, int) or isinstance(user_id, bool):
        raise ProtocolError("user_id must be an integer")
    if event not in EVENTS:
        raise ProtocolError(f"unknown event {event!r}")
    if not isinstance(data, dict):
        raise ProtocolError("data must be an object")
    return ChannelMessage(user_id, event, data)
