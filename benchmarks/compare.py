"""SynthBox against raw Huey on the same backend, in the same run, several times:
medians and the SynthBox/Huey ratios (a noisy machine slows both, not the ratio).

Each round runs `synthbox bench` and `benchmarks/huey_baseline.py` in fresh processes,
alternately, so neither gets a warm cache or a quiet minute the other did not.

Usage: python benchmarks/compare.py [sqlite|redis] [jobs, default 20000] [rounds, default 3]
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIGURES = ("enqueue_per_s", "drain_per_s", "pickup_p50_ms", "pickup_p99_ms", "peak_rss_mb")


def run(command: list[str]) -> dict:
    result = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    backend = sys.argv[1] if len(sys.argv) > 1 else "sqlite"
    jobs = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    ours, theirs = [], []
    for _ in range(rounds):
        ours.append(run([sys.executable, "-m", "synthbox", "bench", "--backend", backend,
                         "--jobs", str(jobs), "--json"]))
        theirs.append(run([sys.executable, str(HERE / "huey_baseline.py"), backend,
                           str(jobs), "--json"]))
    print(f"{jobs:,} no-op jobs on {backend}, median of {rounds} rounds")
    print(f"{'figure':<16}{'SynthBox':>12}{'raw Huey':>12}{'ratio':>9}")
    for figure in FIGURES:
        a = statistics.median(r[figure] for r in ours)
        b = statistics.median(r[figure] for r in theirs)
        print(f"{figure:<16}{a:>12,.2f}{b:>12,.2f}{a / b if b else 0:>9.2f}")


if __name__ == "__main__":
    main()
