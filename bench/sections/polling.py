"""The polling baseline the push design replaced: the seed polled notifications every 10 s.

Latency of polling is the wait for the next poll: uniform over the interval, so mean
interval/2 and max interval. That is computed, then confirmed by a real run with the
interval scaled down (users polling ``GET /api/notifications?since=N`` while a job
reports stored events at random moments) and scaled back up. The load is one request per
user per interval; its cost is measured on a web process with idle polls (nothing new),
beside the push design's idle cost: no requests, an Engine.IO ping per socket every 25 s.
"""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

from bench.core import Bench
from bench.support import PYTHON, cpu_seconds, table

SEED_INTERVAL = 10.0
USERS_PER = 1000
PING_INTERVAL = 25.0  # python-engineio's default pingInterval
POLLERS = 20
HAMMER_CONCURRENCY = 8


def _report_at_random(bench: Bench, user_ids: list[int], duration: float, rate: float) -> int:
    """Stored events at Poisson-random moments, through the job-side ``app.progress.report``.

    Returns how many events were stored: the progress ones, and each task's start and end.
    """
    from app.extensions import broker, db
    from app.models import Task
    from app.progress import report
    from app.sansio.status import TaskStatus

    rng = random.Random(7)  # noqa: S311 -- timing jitter, not a secret
    with bench.stack.app().app_context():
        tasks = []
        for user_id in user_ids:
            task = Task(id=str(uuid.uuid4()), name="example_long_task", user_id=user_id, params={})
            db.session.add(task)
            db.session.commit()
            broker.redis.set(broker.keys.lease(task.id), "bench", ex=600)
            report(task, status=TaskStatus.RUNNING, step=0, total=1000, message="Started")
            tasks.append(task)
        sent, end = 0, time.monotonic() + duration
        while (now := time.monotonic()) < end:
            time.sleep(min(rng.expovariate(rate), end - now))
            sent += 1
            report(rng.choice(tasks), step=sent % 1000, total=1000, message=f"Step {sent}")
        for task in tasks:
            report(task, status=TaskStatus.SUCCEEDED, message="Done")
            broker.redis.delete(broker.keys.lease(task.id))
        db.session.remove()
    return sent + 2 * len(tasks)


def run(bench: Bench) -> dict[str, Any]:
    stack = bench.stack
    interval = 0.5
    duration = 3.0 if bench.quick else 6.0
    users = stack.ensure_users(POLLERS)
    user_ids = [uid for uid, _token in users]
    web = stack.start_web("eventlet")
    poller = stack.child("poller", [PYTHON, "-m", "bench.poller"], commands=True)
    try:
        seqs = stack.last_seqs(user_ids)
        pollers = [[token, seqs[uid]] for uid, token in users]
        poller.send(
            {
                "cmd": "latency",
                "url": web.url,
                "users": pollers,
                "interval": interval,
                "duration": duration + 1,
            }
        )
        time.sleep(0.5)
        sent = _report_at_random(bench, user_ids, duration - 0.5, rate=20)
        measured = poller.answer(timeout=duration + 60)
        waits = [recv - ts for recv, ts in measured["events"]]

        seqs = stack.last_seqs(user_ids)
        idle = [[token, seqs[uid]] for uid, token in users]
        hammer_seconds = 1.5 if bench.quick else 3.0
        cpu0 = cpu_seconds(web.pid)
        load = poller.ask(
            {
                "cmd": "hammer",
                "url": web.url,
                "users": idle,
                "concurrency": HAMMER_CONCURRENCY,
                "duration": hammer_seconds,
            },
            timeout=hammer_seconds + 60,
        )
        cpu_ms = (cpu_seconds(web.pid) - cpu0) * 1000 / max(1, load["requests"])
    finally:
        stack.stop(poller)
        stack.stop(web)

    scale = SEED_INTERVAL / interval
    mean_wait = sum(waits) / len(waits) if waits else float("nan")
    polls_per_s = USERS_PER / SEED_INTERVAL
    connections = bench.results.get("connections", {}).get("levels", [])
    idle_push = next((lvl for lvl in connections if lvl["target"] >= USERS_PER), None)
    result = {
        "seed_interval_s": SEED_INTERVAL,
        "computed": {"mean_latency_s": SEED_INTERVAL / 2, "max_latency_s": SEED_INTERVAL},
        "confirmed": {
            "interval_s": interval,
            "events_stored": sent,
            "events_received": len(waits),
            "requests": measured["requests"],
            "mean_latency_s": mean_wait,
            "max_latency_s": max(waits, default=float("nan")),
            "scaled_mean_latency_s": mean_wait * scale,
            "scaled_max_latency_s": max(waits, default=float("nan")) * scale,
        },
        "poll_cost": {
            "requests_per_s_sustained": load["requests"] / load["seconds"],
            "cpu_ms_per_request": cpu_ms,
            "request_p50_ms": load["p50_ms"],
            "request_p99_ms": load["p99_ms"],
            "errors": load["errors"],
        },
        "per_1000_idle_users": {
            "polling_requests_per_s": polls_per_s,
            "polling_cpu_percent_of_a_core": polls_per_s * cpu_ms / 1000 * 100,
            "push_requests_per_s": 0.0,
            "push_ping_packets_per_s": USERS_PER / PING_INTERVAL,
            "push_idle_cpu_percent_measured": (
                idle_push["idle_cpu_percent"] * USERS_PER / idle_push["connected"] if idle_push else None
            ),
        },
    }
    bench.log(
        f"  polling: scaled mean wait {result['confirmed']['scaled_mean_latency_s']:.2f} s, "
        f"{cpu_ms:.2f} CPU ms per poll"
    )
    return result


def show(result: dict[str, Any]) -> str:
    c, cost, per = result["confirmed"], result["poll_cost"], result["per_1000_idle_users"]
    text = table(
        f"polling every {result['seed_interval_s']:.0f} s (the seed) vs push",
        ["", "mean latency s", "max latency s"],
        [
            ["computed", result["computed"]["mean_latency_s"], result["computed"]["max_latency_s"]],
            [
                f"measured at {c['interval_s']} s, scaled",
                c["scaled_mean_latency_s"],
                c["scaled_max_latency_s"],
            ],
        ],
    )
    text += table(
        "cost per 1,000 idle users",
        ["design", "requests/s", "CPU % of a core", "server req/s max", "CPU ms/req"],
        [
            [
                "polling",
                per["polling_requests_per_s"],
                per["polling_cpu_percent_of_a_core"],
                cost["requests_per_s_sustained"],
                cost["cpu_ms_per_request"],
            ],
            ["push", per["push_requests_per_s"], per["push_idle_cpu_percent_measured"], "-", "-"],
        ],
    )
    return text
