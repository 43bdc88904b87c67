"""What the terminal shows, from events and a width: progress lines, tables, redraws; no I/O."""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

from cli.errors import FINAL_STATUSES

_EIGHTHS = " ▏▎▍▌▋▊▉"
MIN_BAR, MAX_BAR = 10, 30
_MIN_MESSAGE = 20


def format_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "--:--"
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_rate(rate: float | None) -> str:
    if rate is None or not math.isfinite(rate) or rate <= 0:
        return ""
    for scale, unit in ((1, "s"), (60, "min")):
        if rate * scale >= 1:
            return f"{rate * scale:.1f}/{unit}"
    return f"{rate * 3600:.2g}/h"


def render_bar(fraction: float, width: int, *, ascii_only: bool = False) -> str:
    width = max(0, width)
    fraction = min(1.0, max(0.0, fraction)) if math.isfinite(fraction) else 0.0
    if ascii_only:
        filled = int(fraction * width)
        return "#" * filled + "-" * (width - filled)
    full, part = divmod(int(fraction * width * 8), 8)
    bar = "█" * full + (_EIGHTHS[part] if part else "")
    return bar + " " * (width - len(bar))


def clean(text: Any) -> str:
    """Server text made safe to print: control characters (escape sequences, newlines) become spaces."""
    return "".join(" " if unicodedata.category(c).startswith("C") else c for c in str(text))


def display_width(text: str) -> int:
    return sum(_char_width(c) for c in text)


def fit(text: str, width: int, *, ellipsis: str = "…") -> str:
    """``text`` cut to ``width`` terminal columns (wide characters count two)."""
    if display_width(text) <= width:
        return text
    room = width - display_width(ellipsis)
    out, used = [], 0
    for c in text:
        w = _char_width(c)
        if used + w > room:
            break
        out.append(c)
        used += w
    return "".join(out) + ellipsis if room >= 0 else ""


def pad(text: str, width: int) -> str:
    text = fit(text, width)
    return text + " " * (width - display_width(text))


def render_line(event: Mapping[str, Any], width: int, *, ascii_only: bool = False) -> str:
    """One task's line: short id and name, bar, percent, step/total, rate, ETA or outcome, message."""
    status = str(event.get("status", ""))
    progress = 100 if status == "succeeded" else _int(event.get("progress"))
    step, total = _int(event.get("step")), _int(event.get("total"))
    # The short id first: a narrow terminal cuts the name, and two tasks of one type stay apart.
    name = clean(f"{str(event.get('task_id', ''))[:8]} {event.get('name', '?')}")
    steps = f"{step}/{total}" if total else ""
    rate = format_rate(event.get("rate")) if status == "running" else ""
    message = event.get("error") if status == "failed" and event.get("error") else event.get("message")
    columns = f"{progress:>3}% {steps:>7} {rate:>8} {pad(_outcome(event, status), 12)}"
    name_width = min(28, max(12, width // 4))
    bar_width = width - name_width - display_width(columns) - 5 - _MIN_MESSAGE
    bar = render_bar(progress / 100, min(MAX_BAR, max(MIN_BAR, bar_width)), ascii_only=ascii_only)
    line = f"{pad(name, name_width)} [{bar}] {columns} {clean(message or '')}".rstrip()
    return fit(line, width, ellipsis="..." if ascii_only else "…")


def event_from_task(task: Mapping[str, Any]) -> dict[str, Any]:
    """A task as ``GET /api/tasks/<id>`` returns it, in the shape of a ``task_progress`` event."""
    return {**task, "task_id": task.get("id"), "rate": None, "eta": None}


def redraw(previous: int, lines: Sequence[str]) -> str:
    """ANSI text that replaces the ``previous`` lines last drawn (the cursor is below them) with ``lines``."""
    up = f"\r\x1b[{previous}A" if previous else ""
    return up + "".join(f"\x1b[2K{line}\n" for line in lines) + "\x1b[J"


def table(rows: Sequence[Sequence[Any]]) -> list[str]:
    """Columns aligned to their widest cell; the last column is left ragged."""
    cells = [[clean(cell) for cell in row] for row in rows]
    if not cells:
        return []
    widths = [max(display_width(row[i]) for row in cells if i < len(row)) for i in range(len(cells[0]))]
    return [
        "  ".join(pad(cell, widths[i]) if i < len(row) - 1 else cell for i, cell in enumerate(row)).rstrip()
        for row in cells
    ]


def _outcome(event: Mapping[str, Any], status: str) -> str:
    if status == "running":
        return f"ETA {format_duration(event['eta'])}" if event.get("eta") is not None else "running"
    if status == "succeeded":
        return f"done {format_duration(event.get('duration'))}"
    if status == "queued" and _int(event.get("attempt")) > 1:
        return f"queued ({_int(event.get('attempt'))}/{_int(event.get('max_attempts'))})"
    return status if status in FINAL_STATUSES or status == "queued" else clean(status)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _char_width(c: str) -> int:
    if unicodedata.combining(c):
        return 0
    return 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1
