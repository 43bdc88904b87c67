"""The benchmark's smoke test: ``python -m bench --quick`` completes and writes every section's figures.

No timing is asserted: CI machines vary, and docs/performance.md holds the measured results.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from numbers import Number
from pathlib import Path

import pytest

from bench.__main__ import SECTIONS
from tests.support import ROOT

pytestmark = pytest.mark.bench


def _numbers(value: object) -> list[Number]:
    if isinstance(value, bool):
        return []
    if isinstance(value, Number):
        return [value]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    return []


def test_quick_benchmark_writes_every_section(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    args = [sys.executable, "-m", "bench", "--quick", "--out", str(out)]
    if os.environ.get("TEST_DATABASE_URL"):
        args += ["--database-url", os.environ["TEST_DATABASE_URL"]]
    run = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]

    results = json.loads(out.read_text())
    assert results["meta"]["mode"] == "quick"
    assert set(results["sections"]) == set(SECTIONS)
    for name, section in results["sections"].items():
        assert "error" not in section, f"{name}: {section.get('error')}"
        assert _numbers(section), f"{name} has no figures"
    assert results["sections"]["latency"]["points"][0]["samples"] > 0
    assert results["sections"]["throughput"]["points"][0]["product_per_s"] > 0
    assert results["sections"]["connections"]["levels"][0]["connected"] > 0
    assert all(v["publishes"] > 0 for v in results["sections"]["report_cost"]["variants"])
