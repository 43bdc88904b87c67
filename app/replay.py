"""Catching a client up from the database: replay after a seq, or a snapshot.

Shared by the socket handlers (connect and ``resume``) and the polling endpoint, so that
both answer with the same events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from app.extensions import db
from app.models import Notification, User
from app.progress import payload
from app.sansio.protocol import RESYNC, TASK_PROGRESS


@dataclass(frozen=True)
class CatchUp:
    events: list[tuple[str, dict[str, Any]]]
    # The newest seq the client holds once it has these events.
    floor: int


def catch_up(user: User, last_seq: int | None, limit: int) -> CatchUp:
    # Read the user's newest seq first: anything committed after this is delivered live.
    current = db.session.scalar(select(User.last_seq).where(User.id == user.id)) or 0
    events: list[tuple[str, dict[str, Any]]] = []
    if last_seq is not None:
        reason = _unreplayable(user.id, last_seq, current, limit)
        if reason is None:
            rows = list(
                db.session.scalars(
                    select(Notification)
                    .where(Notification.user_id == user.id, Notification.seq > last_seq)
                    .order_by(Notification.seq)
                )
            )
            return CatchUp([(n.name, n.payload) for n in rows], max([last_seq, *(n.seq for n in rows)]))
        events.append((RESYNC, {"reason": reason, "last_seq": current}))
    events += [(TASK_PROGRESS, payload(task)) for task in user.unfinished_tasks()]
    return CatchUp(events, current)


def _unreplayable(user_id: int, last_seq: int, current: int, limit: int) -> str | None:
    if last_seq > current:
        return "unknown_seq"
    if current - last_seq > limit:
        return "too_many"
    oldest = db.session.scalar(select(func.min(Notification.seq)).where(Notification.user_id == user_id))
    first_kept = oldest if oldest is not None else current + 1
    if last_seq + 1 < first_kept:
        return "retention"
    return None
