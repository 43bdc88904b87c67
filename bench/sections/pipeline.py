"""Jobs/s through the whole pipeline, beside bare RQ with the same workers.

Product: ``POST /api/tasks`` (example_long_task, steps=1, delay=0) for N jobs spread over
N/2 users, two ``python -m worker`` processes run them, and the clock stops when the last
final ``succeeded`` event reaches its user's socket. Bare: the same worker class
(``python -m worker``) on a queue of its own, N no-op jobs enqueued with rq's JSON
serializer, the clock stopping when the last one is in the finished registry.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
from redis import Redis
from rq import Queue

from app.broker import SERIALIZER
from bench.core import Bench, CpuMeter
from bench.support import median, table
from tests.support import wait_for

WORKERS = 2
JOBS_PER_USER = 2
POSTERS = 8


def _post_all(url: str, tokens: list[str], jobs: int) -> None:
    def post(i: int) -> None:
        session = sessions[i % POSTERS]
        r = session.post(
            f"{url}/api/tasks",
            json={"name": "example_long_task", "params": {"steps": 1, "delay": 0}},
            headers={"Authorization": f"Bearer {tokens[i % len(tokens)]}"},
            timeout=30,
        )
        if r.status_code != 202:
            raise RuntimeError(f"POST /api/tasks answered {r.status_code}: {r.text}")

    sessions = [requests.Session() for _ in range(POSTERS)]
    try:
        with ThreadPoolExecutor(POSTERS) as pool:
            list(pool.map(post, range(jobs)))
    finally:
        for session in sessions:
            session.close()


def run(bench: Bench) -> dict[str, Any]:
    jobs = 20 if bench.quick else 60
    stack = bench.stack
    users = stack.ensure_users(jobs // JOBS_PER_USER)
    tokens = [token for _uid, token in users]
    bare_queue = f"{stack.queue}-bare"
    web = stack.start_web("eventlet")
    workers = stack.start_workers(WORKERS) + stack.start_workers(WORKERS, bare_queue)
    clients = bench.raw_clients("rawclients-pipeline")
    redis = Redis.from_url(stack.redis_url)
    product_runs, bare_runs = [], []
    try:
        connected = bench.connect_raw(clients, web.url, users)
        if connected["connected"] != len(users):
            raise RuntimeError(f"only {connected['connected']} of {len(users)} clients connected")
        pids = {"web": web.pid, **{f"worker{i}": w.pid for i, w in enumerate(workers[:WORKERS])}}
        for _ in range(bench.runs):
            before = clients.ask({"cmd": "count"})["succeeded"]
            meter = CpuMeter(pids)
            start = time.time()
            _post_all(web.url, tokens, jobs)
            posted = time.time()
            done = clients.ask(
                {"cmd": "until", "field": "succeeded", "total": before + jobs, "timeout": 120}, timeout=180
            )
            if done["succeeded"] - before != jobs:
                raise RuntimeError(f"{done['succeeded'] - before} of {jobs} jobs reported succeeded")
            seconds = done["last_succeeded"] - start
            product_runs.append(
                {
                    "jobs": jobs,
                    "seconds": seconds,
                    "post_seconds": posted - start,
                    "jobs_per_s": jobs / seconds,
                    "cpu_cores": meter.shares(),
                }
            )
        bare = Queue(bare_queue, connection=redis, serializer=SERIALIZER)
        for _ in range(bench.runs):
            before = bare.finished_job_registry.count
            start = time.time()
            for _ in range(jobs):
                bare.enqueue("bench.jobs.noop", job_id=str(uuid.uuid4()))
            enqueued = time.time()
            wait_for(
                lambda target=before + jobs: bare.finished_job_registry.count >= target,
                120,
                "bare jobs",
                interval=0.005,
            )
            seconds = time.time() - start
            bare_runs.append(
                {
                    "jobs": jobs,
                    "seconds": seconds,
                    "enqueue_seconds": enqueued - start,
                    "jobs_per_s": jobs / seconds,
                }
            )
    finally:
        redis.close()
        clients.ask({"cmd": "close"})
        for child in (clients, *workers):
            stack.stop(child)
        stack.stop(web)
    product = median(r["jobs_per_s"] for r in product_runs)
    ceiling = median(r["jobs_per_s"] for r in bare_runs)
    bench.log(f"  pipeline {product:.1f} jobs/s, bare RQ {ceiling:.1f} jobs/s")
    return {
        "jobs": jobs,
        "workers": WORKERS,
        "product_jobs_per_s": product,
        "bare_rq_jobs_per_s": ceiling,
        "ratio": product / ceiling,
        "product_runs": product_runs,
        "bare_runs": bare_runs,
    }


def show(result: dict[str, Any]) -> str:
    return table(
        f"pipeline: {result['jobs']} jobs, {result['workers']} workers (POST -> worker -> succeeded on a socket)",
        ["product jobs/s", "bare RQ jobs/s", "ratio"],
        [[result["product_jobs_per_s"], result["bare_rq_jobs_per_s"], result["ratio"]]],
    )
