"""What a task's side effects did to each item, across its attempts: at most once per item.

A task that acts on the world item by item (an e-mail per recipient) claims each item in
the database before acting on it and records the outcome right after; each write commits
on its own at once, whatever the job's session holds. A later attempt of the same task
(after its worker was killed, a passing failure, an operator's retry) skips every item an
earlier attempt claimed. An item claimed but never finished is one the killed attempt was
acting on: it may or may not have happened, and it is not done again.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import TaskItem, utcnow

# Claimed; the outcome was never recorded (the attempt was killed while acting on it).
STARTED = "started"
DONE = "done"
# The action was refused (a mail server's 550): it did not happen, and is not tried again.
REFUSED = "refused"

_ITEMS = TaskItem.__table__


@dataclass(frozen=True, slots=True)
class Record:
    state: str
    detail: str | None


class Ledger:
    def __init__(self, task_id: str, attempt: int) -> None:
        self.task_id = task_id
        self.attempt = attempt

    def recorded(self) -> dict[str, Record]:
        """Every item an attempt of this task claimed, with what became of it."""
        with db.engine.connect() as conn:
            rows = conn.execute(
                select(_ITEMS.c.item, _ITEMS.c.state, _ITEMS.c.detail).where(_ITEMS.c.task_id == self.task_id)
            )
            return {row.item: Record(row.state, row.detail) for row in rows}

    def claim(self, item: str) -> bool:
        """Record that this attempt is about to act on ``item``; False if another run already claimed it."""
        row = {"task_id": self.task_id, "item": item, "state": STARTED, "attempt": self.attempt}
        try:
            with db.engine.begin() as conn:
                conn.execute(insert(_ITEMS).values(**row, updated_at=utcnow()))
        except IntegrityError:
            return False
        return True

    def finish(self, item: str, state: str = DONE, detail: str | None = None) -> None:
        with db.engine.begin() as conn:
            conn.execute(
                update(_ITEMS)
                .where(_ITEMS.c.task_id == self.task_id, _ITEMS.c.item == item)
                .values(state=state, detail=detail, updated_at=utcnow())
            )

    def release(self, item: str) -> None:
        """Forget this attempt's claim on an item it certainly did not act on, so that a later attempt may."""
        with db.engine.begin() as conn:
            conn.execute(
                delete(_ITEMS).where(
                    _ITEMS.c.task_id == self.task_id, _ITEMS.c.item == item, _ITEMS.c.attempt == self.attempt
                )
            )
