"""Backfill: stored events a connected socket missed because this node never heard them.

A publish is lost when this node's subscription is down (Redis restarted or unreachable,
the resubscribe backoff) or when the publisher could not reach Redis: the event is in the
database all the same. The backfill finds the connections behind their user's latest seq
and replays the gap to each exactly as a resume does: live events are held back meanwhile
and released past what the replay covered, so the client gets every stored event once, in
order, without reconnecting.

It runs at once whenever the subscription is (re)established, and every ``INTERVAL`` as a
safety net for publishes lost while the node was listening. In those rounds a connection
counts as behind only if an event already committed one round earlier has not reached it,
so events still on their way are not replayed for nothing. Its database work is one query
per ``CHUNK`` connected users per round, plus a replay for each connection behind.
"""

from __future__ import annotations

import logging
import threading

from flask import Flask
from flask_socketio import SocketIO
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from app.extensions import db
from app.fanout import Fanout
from app.models import User
from app.replay import catch_up
from app.service import BackgroundService

log = logging.getLogger(__name__)


class Backfill(BackgroundService):
    INTERVAL = 5.0
    CHUNK = 500

    def __init__(self, app: Flask, socketio: SocketIO, fanout: Fanout) -> None:
        super().__init__(app, socketio)
        self._fanout = fanout
        self._wake = threading.Event()
        # Users found behind in the last round, with their latest seq then.
        self._suspects: dict[int, int] = {}

    def stop(self) -> None:
        super().stop()
        self._wake.set()

    def resubscribed(self) -> None:
        """The channel is heard again: whatever was published while it was not is missing."""
        self._wake.set()

    def _run(self) -> None:
        pending = False
        while not self._stopping:
            pending = self._wake.wait(self.INTERVAL) or pending
            self._wake.clear()
            if self._stopping:
                return
            try:
                with self._app.app_context():
                    self.round(everything=pending)
            except SQLAlchemyError as exc:
                # Kept pending: the next round replays everything missed so far.
                log.warning("backfill failed (%s); trying again in %.0f s", type(exc).__name__, self.INTERVAL)
            else:
                pending = False

    def round(self, *, everything: bool) -> None:
        """Replay to each connection what it is missing: ``everything`` up to each user's latest
        seq, or (a safety-net round) only what was already committed one round ago."""
        holding = self._fanout.holding()
        if not holding:
            self._suspects = {}
            return
        latest = self._latest(list(holding))
        before, self._suspects = self._suspects, {u: s for u, s in latest.items() if s > holding[u]}
        for user_id, seq in latest.items():
            target = seq if everything else min(seq, before.get(user_id, 0))
            if target > holding[user_id]:
                self._replay(user_id, self._fanout.behind(user_id, target))

    def _latest(self, user_ids: list[int]) -> dict[int, int]:
        latest: dict[int, int] = {}
        for start in range(0, len(user_ids), self.CHUNK):
            chunk = user_ids[start : start + self.CHUNK]
            rows = db.session.execute(select(User.id, User.last_seq).where(User.id.in_(chunk)))
            latest.update(rows.tuples().all())
        return latest

    def _replay(self, user_id: int, sids: list[str]) -> None:
        user = db.session.get(User, user_id)
        if user is None:
            return
        for sid in sids:
            held = self._fanout.begin_backfill(sid)
            if held is None:
                continue  # gone, or replaying for a resume of its own
            try:
                result = catch_up(user, held.upto, self._app.config["REPLAY_LIMIT"])
            except SQLAlchemyError:
                self._fanout.go_live(sid, held.floor)
                raise
            # What it holds above the gap arrived live, out of order, before the gap was filled.
            sent = self._fanout.replay(sid, result.events, skip=held.ahead)
            self._fanout.go_live(sid, result.floor)
            log.info(
                "backfilled %d events to socket %s of user %s (it held up to seq %s)",
                sent,
                sid,
                user_id,
                held.upto,
            )
