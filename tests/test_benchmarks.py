"""Each benchmark once, with a tiny load, so they keep working (figures: benchmarks/)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run(*args: str) -> str:
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_compare_prints_medians_and_ratios(backend, redis_url, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    out = run(str(BENCHMARKS / "compare.py"), backend, "300", "1")
    lines = out.splitlines()
    assert lines[0] == f"300 no-op jobs on {backend}, median of 1 rounds"
    drain = next(line for line in lines if line.startswith("drain_per_s")).split()
    assert float(drain[1].replace(",", "")) > 0 and float(drain[2].replace(",", "")) > 0


def test_pages_at_scale_times_every_page():
    out = run(str(BENCHMARKS / "pages_at_scale.py"), "3000", "2")
    labels = [line.split("  ")[0].strip() for line in out.splitlines()[1:]]
    assert labels == ["dashboard", "dashboard live", "queue page", "queue page, failed",
                      "queue page, search", "/metrics", "stats API"]
