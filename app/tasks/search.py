from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from redis.exceptions import LockNotOwnedError
from redis.lock import Lock

from app.extensions import broker
from app.search import rebuild
from app.tasks.errors import TaskError

if TYPE_CHECKING:
    from app.tasks.runtime import TaskContext

# Renewed at every progress report; short enough that a killed worker's lock soon lapses,
# long enough to cover the last step (PostgreSQL's GIN index build and the swap).
LOCK_TTL = 10 * 60


def rebuild_lock() -> Lock:
    """Held while a rebuild runs: the index has a single build table, so builds cannot overlap."""
    return broker.redis.lock(f"{broker.keys.namespace}:lock:reindex_search", timeout=LOCK_TTL, blocking=False)


def reindex_search(ctx: TaskContext) -> dict[str, int]:
    lock = rebuild_lock()
    if not lock.acquire():
        raise TaskError(
            "The search index is already being rebuilt by another task; try again when it is done."
        )
    try:

        def progress(done: int, total: int) -> None:
            lock.reacquire()
            ctx.report(done, total, f"Indexed {done} of {total} posts")

        posts = rebuild(progress)
    finally:
        # Lapsed only if one step outlasted LOCK_TTL; this rebuild is over either way.
        with contextlib.suppress(LockNotOwnedError):
            lock.release()
    return {"posts": posts}
