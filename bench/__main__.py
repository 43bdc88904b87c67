"""``python -m bench [--quick] [--out FILE] [--only NAME] [--database-url URL]``.

Starts a private redis-server, a fresh database, and real web and worker processes on
loopback; runs each section; prints a table per section and writes every figure to JSON
(after each section, so an interrupted run keeps what it measured). See docs/performance.md.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import platform
import signal
import sys
import time
from pathlib import Path
from typing import Any

from bench.core import Bench
from bench.stack import Stack
from bench.support import ROOT, raise_file_limit

SECTIONS = (
    "latency",
    "throughput",
    "connections",
    "slow_clients",
    "report_cost",
    "pipeline",
    "polling",
    "async_modes",
    "blocking",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="a small subset of every section (CI smoke test)"
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results.json", help="where the JSON goes"
    )
    parser.add_argument(
        "--only", choices=SECTIONS, action="append", help="run only this section (repeatable)"
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL"),
        help="a PostgreSQL URL to use instead of a temporary SQLite file (its public schema is DROPPED)",
    )
    parser.add_argument("--runs", type=int, help="repetitions per measurement (default: 3, quick: 1)")
    return parser.parse_args(argv)


def _interrupted(signum: int, frame: object) -> None:
    # Turn SIGTERM into an exception so the finally blocks stop every child by its PID.
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupted)
    nofile = raise_file_limit()
    names = [name for name in SECTIONS if not args.only or name in args.only]
    output: dict[str, Any] = {
        "meta": {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "mode": "quick" if args.quick else "full",
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "database": "postgresql" if args.database_url else "sqlite",
            "file_limit": nofile,
        },
        "sections": {},
    }
    started = time.perf_counter()
    failed = False

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {message}", flush=True)

    with Stack.running(args.database_url) as stack:
        bench = Bench(stack, args.quick, args.runs or (1 if args.quick else 3), log)
        for name in names:
            module = importlib.import_module(f"bench.sections.{name}")
            log(f"{name} ...")
            section_started = time.perf_counter()
            try:
                result = module.run(bench)
            except Exception as exc:  # noqa: BLE001 -- one broken section must not hide the others' figures
                failed = True
                log(f"{name} FAILED: {type(exc).__name__}: {exc}")
                output["sections"][name] = {"error": f"{type(exc).__name__}: {exc}"}
            else:
                result["seconds"] = time.perf_counter() - section_started
                bench.results[name] = output["sections"][name] = result
                print(module.show(result), flush=True)
            output["meta"]["seconds"] = time.perf_counter() - started
            _write(args.out, output)
    output["meta"]["seconds"] = time.perf_counter() - started
    _write(args.out, output)
    log(f"done; figures in {args.out}")
    return 1 if failed else 0


def _write(path: Path, output: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_finite(output), indent=2, allow_nan=False) + "\n")
    tmp.replace(path)


def _finite(value: Any) -> Any:
    """NaN (a percentile of nothing) becomes null: JSON has no NaN."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


if __name__ == "__main__":
    sys.exit(main())
