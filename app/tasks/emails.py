from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.tasks.runtime import TaskContext


def send_batch_emails(ctx: TaskContext, **params: Any) -> Any:
    raise NotImplementedError("being written")
