"""``python -m bench.publisher``: channel messages straight onto Redis, as fast as the web node takes them.

The messages are what a job publishes (``app.sansio.events.encode(ChannelMessage(...))``),
encoded before the clock starts so this process spends its CPU on publishing only. To
saturate the web node without burying it, publishing pauses while the subscriber's
output buffer in Redis (``CLIENT LIST TYPE pubsub``, ``omem``) is above a bound: the
node always has work queued, and the queue stays bounded.
"""

from __future__ import annotations

import os
import time
from itertools import cycle
from typing import Any

from redis import Redis

from app.broker import Keys
from app.sansio.events import TASK_PROGRESS, ChannelMessage, encode
from bench.payloads import progress_payload
from bench.support import serve_commands

BATCH = 200


class Publisher:
    def __init__(self) -> None:
        self.redis = Redis.from_url(os.environ["REDIS_URL"])
        self.channel = Keys.of(os.environ).channel
        self.messages: list[bytes] = []
        self.seq: dict[int, int] = {}
        # Messages per user so far (stored and volatile).
        self.sent: dict[int, int] = {}
        self.ticks_per_store = 0
        self.user_ids: list[int] = []

    def _start_after(self, after: dict[str, int] | None) -> None:
        # A node drops an event whose seq a connection already holds (its last_seq at
        # connect), so each user's seqs start above what the database handed out.
        for user_id, seq in (after or {}).items():
            self.seq[int(user_id)] = max(self.seq.get(int(user_id), 0), seq)

    def prepare(
        self,
        user_ids: list[int],
        count: int,
        after: dict[str, int] | None = None,
        ticks_per_store: int = 0,
    ) -> dict[str, Any]:
        """Encode ``count`` more messages round-robin over the users, each user's seq increasing.

        With ``ticks_per_store`` N, each stored event is followed by N volatile ticks carrying
        its seq, the mix a reporting job publishes.
        """
        self._start_after(after)
        if user_ids != self.user_ids:
            self.user_ids, self.messages = user_ids, []
        self.ticks_per_store = ticks_per_store
        users = cycle(user_ids)
        for _ in range(count):
            user_id = next(users)
            self.sent[user_id] = sent = self.sent.get(user_id, 0) + 1
            volatile = ticks_per_store > 0 and sent % (ticks_per_store + 1) != 0
            if not volatile:
                self.seq[user_id] = self.seq.get(user_id, 0) + 1
            payload = progress_payload(user_id, self.seq.get(user_id, 0), step=sent, volatile=volatile)
            self.messages.append(encode(ChannelMessage(user_id, TASK_PROGRESS, payload)))
        return {"prepared": len(self.messages)}

    def _backlog(self) -> int:
        clients = self.redis.client_list(_type="pubsub")
        return max((int(c.get("omem", 0)) for c in clients), default=0)

    def run(self, duration: float, max_backlog: int = 2_000_000) -> dict[str, Any]:
        pipe = self.redis.pipeline(transaction=False)
        published = checks = busy = index = 0
        start_wall, start = time.time(), time.perf_counter()
        end = start + duration
        while time.perf_counter() < end:
            checks += 1
            if self._backlog() > max_backlog:
                busy += 1
                time.sleep(0.001)
                continue
            for _ in range(BATCH):
                if index >= len(self.messages):
                    # Out of prepared messages: more for the same users, their seqs still increasing.
                    self.prepare(
                        self.user_ids, max(len(self.messages), BATCH), ticks_per_store=self.ticks_per_store
                    )
                pipe.publish(self.channel, self.messages[index])
                index += 1
            published += BATCH
            pipe.execute()
        elapsed = time.perf_counter() - start
        # Consumed from the front: what was sent is dropped so that no seq is published twice.
        self.messages = self.messages[index:]
        return {
            "published": published,
            "seconds": elapsed,
            "start": start_wall,
            "saturated_share": busy / checks if checks else 0.0,
        }

    def burst(self, count: int) -> dict[str, Any]:
        """Publish ``count`` prepared messages back to back; Redis queues what the node has not read."""
        if count > len(self.messages):
            self.prepare(self.user_ids, count - len(self.messages), ticks_per_store=self.ticks_per_store)
        pipe = self.redis.pipeline(transaction=False)
        start = time.time()
        for i in range(0, count, BATCH):
            for message in self.messages[i : min(i + BATCH, count)]:
                pipe.publish(self.channel, message)
            pipe.execute()
        end = time.time()
        self.messages = self.messages[count:]
        return {"published": count, "start": start, "end": end}

    def one_each(
        self, user_ids: list[int], after: dict[str, int] | None = None, batch: int = 50
    ) -> dict[str, Any]:
        """One event per user, each stamped with ``ts`` as it is published."""
        self._start_after(after)
        pipe = self.redis.pipeline(transaction=False)
        start = time.time()
        for i, user_id in enumerate(user_ids, 1):
            self.seq[user_id] = seq = self.seq.get(user_id, 0) + 1
            pipe.publish(
                self.channel, encode(ChannelMessage(user_id, TASK_PROGRESS, progress_payload(user_id, seq)))
            )
            if i % batch == 0:
                pipe.execute()
        pipe.execute()
        return {"published": len(user_ids), "seconds": time.time() - start}


def main() -> None:
    publisher = Publisher()
    serve_commands(
        {
            "prepare": publisher.prepare,
            "run": publisher.run,
            "burst": publisher.burst,
            "one_each": publisher.one_each,
        }
    )


if __name__ == "__main__":
    main()
