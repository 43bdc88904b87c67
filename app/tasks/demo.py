from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.tasks.runtime import TaskContext


def example_long_task(ctx: TaskContext, steps: int, delay: float) -> dict[str, int]:
    ctx.report(0, steps, "Starting")
    for i in range(1, steps + 1):
        ctx.sleep(delay)
        ctx.report(i, steps, f"Step {i} of {steps}")
    return {"steps": steps}
