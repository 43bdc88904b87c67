"""The Socket.IO protocol, declared once: the server validates against these schemas,
the tests check every payload against them, and docs/protocol.md is generated from them.

Bump ``PROTOCOL_VERSION`` on any change a client could notice (a removed or retyped field,
a changed meaning); adding an optional field or a new event does not need a bump.
"""

from __future__ import annotations

from typing import Any

PROTOCOL_VERSION = 1

# Server -> client events.
WELCOME = "welcome"
TASK_PROGRESS = "task_progress"
RESYNC = "resync"
SESSION_ENDED = "session_ended"
PROTOCOL_ERROR = "protocol_error"
ADMIN_TASK = "admin_task"
CLOSING = "closing"
# Client -> server events.
RESUME = "resume"

# Why ``session_ended`` ended a connection.
TOKEN_REVOKED = "token_revoked"  # noqa: S105 -- a reason, not a secret
LOGGED_OUT = "logged_out"
PASSWORD_CHANGED = "password_changed"  # noqa: S105 -- a reason, not a secret
EXPIRED = "expired"

# Why the server closes a connection (``closing``'s reason).
TOO_MANY_EVENTS = "too_many_events"

# The messages of refused connections (``connect_error`` data is ``{"message": ...}``).
REFUSALS: dict[str, str] = {
    "authentication required": "no login session and no valid token (missing, unknown, expired or revoked)",
    "invalid last_seq": "`last_seq` is present but not an integer >= 0",
    "progress channel unavailable": "the server cannot reach Redis; try again later",
    "too many resumes": "this Engine.IO connection connected again with `last_seq` too soon (see Limits)",
}

_SEQ = {"type": "integer", "minimum": 0}
_NULLABLE_NUMBER = {"type": ["number", "null"]}

TASK_PROGRESS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "task_id": {"type": "string", "description": "the task's id (also the RQ job id)"},
        "name": {"type": "string", "description": "task type, e.g. `example_long_task`"},
        "status": {
            "enum": ["queued", "running", "succeeded", "failed", "cancelled"],
            "description": "lifecycle state; the last three are final",
        },
        "progress": {"type": "integer", "minimum": 0, "maximum": 100, "description": "percent done"},
        "step": {"type": "integer", "minimum": 0, "description": "the last reported step"},
        "total": {"type": "integer", "minimum": 0, "description": "number of steps (0 when not known)"},
        "message": {"type": "string", "description": "a short human-readable message"},
        "attempt": {"type": "integer", "minimum": 1, "description": "which attempt this is"},
        "max_attempts": {"type": "integer", "minimum": 1, "description": "attempts the type allows"},
        "rate": {**_NULLABLE_NUMBER, "description": "steps per second of the running attempt, if known"},
        "eta": {**_NULLABLE_NUMBER, "description": "seconds left for a running task, if known"},
        "duration": {
            **_NULLABLE_NUMBER,
            "description": "seconds since the attempt started (final once finished)",
        },
        "has_result_file": {"type": "boolean", "description": "a finished task has a file to download"},
        "seq": {**_SEQ, "description": "the user's event sequence number (see Ordering)"},
        "volatile": {
            "type": "boolean",
            "description": "a progress tick between stored events: not stored, never replayed, "
            "carries the seq of the task's last stored event",
        },
        "ts": {"type": "number", "description": "epoch seconds when the job reported it"},
        "result": {"description": "the task's result once `succeeded` (any JSON), else null"},
        "error": {"type": ["string", "null"], "description": "a message for the user once `failed`"},
    },
}
TASK_PROGRESS_SCHEMA["required"] = sorted(TASK_PROGRESS_SCHEMA["properties"])

SERVER_EVENTS: dict[str, dict[str, Any]] = {
    WELCOME: {
        "description": "First event on every connection.",
        "type": "object",
        "additionalProperties": False,
        "required": ["protocol", "user_id", "username", "last_seq"],
        "properties": {
            "protocol": {"const": PROTOCOL_VERSION, "description": "protocol version"},
            "user_id": {"type": "integer", "description": "who the connection is authenticated as"},
            "username": {"type": "string", "description": "their username"},
            "last_seq": {**_SEQ, "description": "the user's newest seq when the connection was set up"},
        },
    },
    TASK_PROGRESS: {"description": "A task changed or reported progress.", **TASK_PROGRESS_SCHEMA},
    RESYNC: {
        "description": "The requested `last_seq` cannot be replayed; a snapshot of unfinished tasks follows.",
        "type": "object",
        "additionalProperties": False,
        "required": ["reason", "last_seq"],
        "properties": {
            "reason": {
                "enum": ["retention", "too_many", "unknown_seq"],
                "description": "older than the retention window, too many to replay, or newer than the server knows",
            },
            "last_seq": {**_SEQ, "description": "continue from this seq after the snapshot"},
        },
    },
    SESSION_ENDED: {
        "description": "The connection's credential ended: its token was revoked, its browser login "
        "logged out, the user's password was changed elsewhere, or the token or login expired. The "
        "server disconnects right after; reconnecting is refused until the client signs in again.",
        "type": "object",
        "additionalProperties": False,
        "required": ["reason"],
        "properties": {
            "reason": {
                "enum": [TOKEN_REVOKED, LOGGED_OUT, PASSWORD_CHANGED, EXPIRED],
                "description": "`DELETE /api/tokens`; logout; a password change on another login "
                "(ends every other login and every token); the token's `TOKEN_TTL` or the login's lifetime ran out",
            }
        },
    },
    ADMIN_TASK: {
        "description": "Operators only (users with `is_admin`): any user's task changed. Not replayed.",
        "type": "object",
        "additionalProperties": False,
        "required": [*TASK_PROGRESS_SCHEMA["required"], "user_id"],
        "properties": {
            **TASK_PROGRESS_SCHEMA["properties"],
            "user_id": {"type": "integer", "description": "the task's owner"},
        },
    },
    CLOSING: {
        "description": "The client broke a limit (see Limits); the server closes the connection right after.",
        "type": "object",
        "additionalProperties": False,
        "required": ["reason"],
        "properties": {"reason": {"enum": [TOO_MANY_EVENTS], "description": "which limit"}},
    },
    PROTOCOL_ERROR: {
        "description": "A client event was refused (malformed, or over a limit) and ignored; "
        "the connection stays open.",
        "type": "object",
        "additionalProperties": False,
        "required": ["event", "error"],
        "properties": {
            "event": {"type": "string", "description": "the event that was refused"},
            "error": {"type": "string", "description": "what was wrong with it"},
        },
    },
}

CLIENT_EVENTS: dict[str, dict[str, Any]] = {
    RESUME: {
        "description": "Replay every event after `last_seq`, then continue live (same as `last_seq` at connect).",
        "type": "object",
        "additionalProperties": False,
        "required": ["last_seq"],
        "properties": {
            "last_seq": {**_SEQ, "description": "the newest seq the client has seen without a gap"}
        },
    },
}

CONNECT_AUTH: dict[str, Any] = {
    "description": "The `auth` object of the Socket.IO connection.",
    "type": "object",
    "properties": {
        "token": {"type": "string", "description": "an API token; browsers use their login session instead"},
        "last_seq": {**_SEQ, "description": "resume after this seq; omit for a snapshot of unfinished tasks"},
    },
}


def parse_last_seq(value: Any) -> int | None:
    """``None`` when absent; raises ``ValueError`` for anything but an integer >= 0."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("invalid last_seq")
    return value


def _type_name(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{schema['const']}`"
    kind = schema.get("type", "any JSON")
    return " \\| ".join(kind) if isinstance(kind, list) else kind


def _fields_table(schema: dict[str, Any]) -> list[str]:
    required = set(schema.get("required", ()))
    lines = ["| field | type | required | meaning |", "|---|---|---|---|"]
    for name, prop in schema["properties"].items():
        lines.append(
            f"| `{name}` | {_type_name(prop)} | {'yes' if name in required else 'no'} | {prop.get('description', '')} |"
        )
    return lines


def markdown() -> str:
    """The reference part of docs/protocol.md, generated so that the doc cannot drift from the code."""
    out = [f"Protocol version: **{PROTOCOL_VERSION}**", "", "### Connecting: `auth`", ""]
    out += [CONNECT_AUTH["description"], "", *_fields_table(CONNECT_AUTH), ""]
    out += ["### Refusals", "", "| `connect_error` message | when |", "|---|---|"]
    out += [f"| `{message}` | {when} |" for message, when in REFUSALS.items()]
    for title, events in (("Server to client", SERVER_EVENTS), ("Client to server", CLIENT_EVENTS)):
        out += ["", f"### {title}"]
        for name, schema in events.items():
            out += ["", f"#### `{name}`", "", schema["description"], "", *_fields_table(schema)]
    return "\n".join(out) + "\n"
