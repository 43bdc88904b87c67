"""The resume point and the newest state per task of docs/protocol.md ("Ordering"), without I/O.

python-socketio runs each received event's handler on a thread of its own, so two events
can be handled in the other order than they arrived (python-socketio issue #382). Nothing
here assumes an order: an event handled before the ``welcome`` of its connection waits for
it, and a ``resync`` handled late keeps what was received above its seq.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Verdict(enum.Enum):
    LATEST = "latest"  # new, and the newest known state of its task
    STALE = "stale"  # new, but its task is already known in a newer state
    DUPLICATE = "duplicate"  # received before, or a snapshot of a state already known


@dataclass(frozen=True)
class _Shown:
    seq: int
    ts: float | None
    volatile: bool


class SeqTracker:
    def __init__(self, last_seq: int | None = None) -> None:
        # The highest stored seq received without a gap: what a reconnect sends as ``last_seq``.
        self.last_seq = last_seq
        self._above: set[int] = set()
        self._shown: dict[str, _Shown] = {}

    def welcome(self, last_seq: int) -> None:
        # Only a first connection starts from the server's seq; a resumed one keeps its own.
        if self.last_seq is None:
            self._move_to(last_seq)

    def resync(self, last_seq: int) -> None:
        if self.last_seq is not None and last_seq < self.last_seq:
            # "unknown_seq": the server's history is not the one these seqs came from.
            self._above.clear()
            self._shown.clear()
        self._move_to(last_seq)

    def accept(self, task_id: str, seq: int, *, volatile: bool = False, ts: float | None = None) -> Verdict:
        shown = self._shown.get(task_id)
        if volatile:
            # A tick is never replayed and never moves the resume point; it carries its task's last stored seq.
            if shown is not None and shown.volatile and (shown.seq, shown.ts) == (seq, ts):
                return Verdict.DUPLICATE
            newer = shown is None or seq > shown.seq or (seq == shown.seq and _not_older(ts, shown.ts))
        else:
            if self.last_seq is None or seq > self.last_seq:
                if seq in self._above:
                    return Verdict.DUPLICATE
                self._above.add(seq)
                self._advance()
            elif shown is not None and seq <= shown.seq:
                # At or below the resume point only snapshots arrive; this one shows nothing new.
                return Verdict.DUPLICATE
            # Equal seqs: the shown state is a tick that followed this stored event.
            newer = shown is None or seq > shown.seq
        if not newer:
            return Verdict.STALE
        self._shown[task_id] = _Shown(seq, ts, volatile)
        return Verdict.LATEST

    def _move_to(self, last_seq: int) -> None:
        self.last_seq = last_seq
        self._above = {seq for seq in self._above if seq > last_seq}
        self._advance()

    def _advance(self) -> None:
        if self.last_seq is None:
            return
        while self.last_seq + 1 in self._above:
            self.last_seq += 1
            self._above.discard(self.last_seq)


def _not_older(ts: float | None, than: float | None) -> bool:
    return ts is None or than is None or ts >= than
