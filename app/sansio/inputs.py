"""What a request may carry, as pure functions: text a database can store, JSON a parser can bound.

PostgreSQL refuses NUL in text and every driver refuses lone surrogates (they cannot be encoded
as UTF-8); SQLite stores both and hands them back to pages. Either way such text is never a
user's intent, so it is refused at the door with a 400 instead of failing deep in a query.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

# Deep enough for every document the API takes (an object of arrays), far below the recursion
# that the parsers and every walk over the result would hit.
MAX_JSON_DEPTH = 32

_REFUSED = re.compile("[\x00\ud800-\udfff]")
# Characters a redirect target may not hold: controls (a header cannot carry CR/LF) and the
# backslash, which browsers read as a slash (``/\evil.example`` is ``//evil.example``).
_UNSAFE_IN_PATH = re.compile(r"[\x00-\x1f\x7f\\]")


class InputRefused(ValueError):
    """A value no part of the application can take; ``str()`` says why, for the client."""


def refused_in(value: str) -> bool:
    return _REFUSED.search(value) is not None


def check_text(values: Iterable[tuple[str, str]]) -> None:
    """Raise ``InputRefused`` naming the first (where, text) pair holding a refused character."""
    for where, text in values:
        if refused_in(text):
            raise InputRefused(f"{where} must not contain NUL bytes or unpaired surrogates")


def _walk(value: Any) -> Iterable[tuple[int, Any]]:
    # Iterative: a walk that recursed would fail on the very documents it is meant to refuse.
    stack = [(1, value)]
    while stack:
        depth, item = stack.pop()
        yield depth, item
        if isinstance(item, dict):
            stack.extend((depth + 1, k) for k in item)
            stack.extend((depth + 1, v) for v in item.values())
        elif isinstance(item, list):
            stack.extend((depth + 1, v) for v in item)


def load_json(text: str | bytes, **kwargs: Any) -> Any:
    """``json.loads`` bounded in depth, whose strings (keys too) are all storable text."""
    too_deep = InputRefused(f"JSON must not nest deeper than {MAX_JSON_DEPTH} levels")
    try:
        value = json.loads(text, **kwargs)
    except RecursionError:
        # The parser's own bound, far deeper than ours; it unwinds cleanly.
        raise too_deep from None
    for depth, item in _walk(value):
        if depth > MAX_JSON_DEPTH + 1:
            raise too_deep
        if isinstance(item, str):
            check_text([("a JSON string", item)])
    return value


def safe_path(target: str | None) -> bool:
    """A redirect target that stays on this site: a plain absolute path, nothing a header refuses."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return False
    return _UNSAFE_IN_PATH.search(target) is None
