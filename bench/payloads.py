"""The ``task_progress`` payload the throughput and connection sections push.

Shaped like a running task's stored event (docs/protocol.md, ``task_progress``), so the
product and the bare server serialize the same bytes per event.
"""

from __future__ import annotations

import time
from typing import Any


def progress_payload(
    user_id: int, seq: int, ts: float | None = None, *, step: int | None = None, volatile: bool = False
) -> dict[str, Any]:
    step = seq % 1000 if step is None else step % 1000
    return {
        "task_id": f"00000000-0000-4000-8000-{user_id:012d}",
        "name": "example_long_task",
        "status": "running",
        "progress": step // 10,
        "step": step,
        "total": 1000,
        "message": f"Step {step} of 1000",
        "attempt": 1,
        "max_attempts": 1,
        "rate": 250.0,
        "eta": 3.9,
        "duration": 0.25,
        "has_result_file": False,
        "seq": seq,
        "volatile": volatile,
        "ts": time.time() if ts is None else ts,
        "result": None,
        "error": None,
    }
