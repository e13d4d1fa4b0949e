"""What the in-process and the served benchmarks share: their sizes and their arithmetic."""

from __future__ import annotations

LATENCY_RATE = 100  # jobs/s
LATENCY_JOBS = 1000  # samples of pickup latency: the p99 is the 10th slowest, not one outlier
BULK_SIZE = 1000  # jobs per add_bulk() call


def latency_jobs(jobs: int) -> int:
    """How many jobs the pickup phase sends: LATENCY_JOBS for a full run, fewer for a
    smoke run of a few hundred jobs."""
    return min(LATENCY_JOBS, max(20, jobs // 20))


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]

HTTP_CLIENTS = 4  # connections of the served benchmark
HTTP_BULK_SIZE = 1000  # jobs per request of the served bulk phase
