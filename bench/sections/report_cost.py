"""The cost of ``ctx.report`` inside a job: µs per call, database writes and publishes per task.

Two jobs, each reporting every item: one with trivial work per item (the pure cost of the
call), one with ~10 µs of hashing per item (a job that does something, and runs long
enough for per-second rates to mean something). Each is timed with and without the calls.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

from redis import Redis

from app.sansio.events import decode
from bench.core import Bench
from bench.support import PYTHON, median, table

VARIANTS = (("trivial", 0.0), ("10us_work", 10.0))


class PublishCounter:
    """Counts the messages on the progress channel, per task, from a thread of this process."""

    def __init__(self, redis_url: str, channel: str) -> None:
        self.counts: Counter[str] = Counter()
        self._redis = Redis.from_url(redis_url)
        self._pubsub = self._redis.pubsub()
        self._pubsub.subscribe(channel)
        self._pubsub.get_message(timeout=5)  # the subscribe confirmation: listening from here on
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self._pubsub.get_message(timeout=0.1)
            if message and message["type"] == "message":
                self.counts[decode(message["data"]).data().get("task_id", "")] += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._pubsub.close()
        self._redis.close()


def run(bench: Bench) -> dict[str, Any]:
    reports = 20_000 if bench.quick else 100_000
    (user_id, _token), *_ = bench.stack.ensure_users(1)
    child = bench.stack.child(
        "reportcost", [PYTHON, "-m", "bench.reportcost"], env={"ASYNC_MODE": "threading"}, commands=True
    )
    counter = PublishCounter(bench.stack.redis_url, bench.stack.channel)
    rows = []
    try:
        for name, work_us in VARIANTS:
            runs = []
            for _ in range(bench.runs):
                result = child.ask(
                    {"cmd": "measure", "user_id": user_id, "reports": reports, "work_us": work_us}
                )
                runs.append(result)
            # The last run's final event is published as its job ends; let it arrive.
            time.sleep(0.3)
            for result in runs:
                # Events of the loop itself: the final "succeeded" one is not the loop's.
                result["publishes"] = counter.counts[result["task_id"]] - 2
            rows.append(_summary(name, work_us, runs))
            bench.log(
                f"  {name}: {rows[-1]['us_per_call']:.2f} µs per call, {rows[-1]['slowdown_percent']:.0f}% slower"
            )
    finally:
        counter.close()
        bench.stack.stop(child)
    return {"reports": reports, "variants": rows}


def _summary(name: str, work_us: float, runs: list[dict[str, Any]]) -> dict[str, Any]:
    for r in runs:
        r["us_per_call"] = (r["seconds_with"] - r["seconds_without"]) / r["reports"] * 1e6
        r["slowdown_percent"] = (
            (r["seconds_with"] / r["seconds_without"] - 1) * 100 if r["seconds_without"] else None
        )
    seconds = median(r["seconds_with"] for r in runs)
    # Rates over the job's whole run: its blocks without reports are time passing too, and
    # the coalescing is by time.
    for r in runs:
        r["wall_seconds"] = r["end"] - r["start"]
    return {
        "variant": name,
        "work_us_per_item": work_us,
        "reports": runs[0]["reports"],
        "seconds_without": median(r["seconds_without"] for r in runs),
        "seconds_with": seconds,
        "us_per_call": median(r["us_per_call"] for r in runs),
        "slowdown_percent": median(r["slowdown_percent"] for r in runs if r["slowdown_percent"] is not None),
        "db_writes": median(r["notifications_added"] for r in runs),
        "commits": median(r["commits"] for r in runs),
        "publishes": median(r["publishes"] for r in runs),
        "db_writes_per_s": median(r["notifications_added"] / r["wall_seconds"] for r in runs),
        "publishes_per_s": median(r["publishes"] / r["wall_seconds"] for r in runs),
        "runs": runs,
    }


def show(result: dict[str, Any]) -> str:
    return table(
        f"report_cost: a job calling ctx.report {result['reports']:,} times",
        [
            "work/item",
            "job s w/o",
            "job s with",
            "µs/call",
            "slower %",
            "DB writes",
            "writes/s",
            "publishes",
            "pub/s",
        ],
        [
            [
                v["variant"],
                v["seconds_without"],
                v["seconds_with"],
                v["us_per_call"],
                v["slowdown_percent"],
                v["db_writes"],
                v["db_writes_per_s"],
                v["publishes"],
                v["publishes_per_s"],
            ]
            for v in result["variants"]
        ],
    )
