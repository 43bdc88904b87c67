"""The ``key=value`` arguments of ``start``, turned into the task's JSON ``params``; no I/O."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

_NOT_JSON = object()


def parse_params(items: Sequence[str], kinds: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``kinds`` maps a parameter to its type in ``GET /api/task-types`` ("integer", "array", ...).

    Raises ``ValueError`` with a message for the user.
    """
    return {key: parse_value(raw, (kinds or {}).get(key)) for key, raw in split_assignments(items)}


def split_assignments(items: Sequence[str]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"expected key=value, got {item!r}")
        if any(key == seen for seen, _ in pairs):
            raise ValueError(f"{key} is given twice")
        pairs.append((key, raw))
    return pairs


def parse_value(raw: str, kind: str | None = None) -> Any:
    value = _json(raw)
    if kind == "array":
        if isinstance(value, list):
            return value
        text = value if isinstance(value, str) else raw
        return [part.strip() for part in text.split(",") if part.strip()]
    return raw if value is _NOT_JSON else value


def _json(raw: str) -> Any:
    try:
        return json.loads(raw, parse_constant=_refuse)
    except ValueError:
        return _NOT_JSON


def _refuse(name: str) -> Any:
    # NaN and Infinity are not JSON; the server would read them as numbers it then refuses.
    raise ValueError(name)
