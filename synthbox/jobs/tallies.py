"""What the workers tally as they finish jobs: per queue and minute (the dashboard's
charts, the metrics' totals) and in histogram buckets of run and wait time."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any, NamedTuple

from synthbox.jobs.rows import ClaimedJob, Failure


class Minute(NamedTuple):
    """What happened in a queue in one minute (a queue_minute row)."""

    queue: str
    minute: int  # Unix time // 60
    completed: int
    failed: int
    wait_ms: float  # summed over the attempts picked
    picked: int
    retried: int
    stalled: int
    rate_limited: int


MINUTE_COLUMNS = Minute._fields[2:]
_COMPLETED, _FAILED, _WAIT_MS, _PICKED, _RETRIED = (
    MINUTE_COLUMNS.index(c) for c in ("completed", "failed", "wait_ms", "picked", "retried"))
MINUTE_UPSERT = (  # what happened per queue and minute, added up
    f"INSERT INTO queue_minute (queue, minute, {', '.join(MINUTE_COLUMNS)}) "
    f"VALUES (?, ?, {', '.join('?' * len(MINUTE_COLUMNS))}) "
    "ON CONFLICT (queue, minute) DO UPDATE SET "
    + ", ".join(f"{c}=queue_minute.{c}+excluded.{c}" for c in MINUTE_COLUMNS))
# upper bounds (seconds) of the run and wait time buckets; the last one is +Inf
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
           300.0, 600.0, float("inf"))
HISTOGRAM_UPSERT = (
    "INSERT INTO job_histogram (queue, metric, bucket, n, total) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (queue, metric, bucket) DO UPDATE SET n=job_histogram.n+excluded.n, "
    "total=job_histogram.total+excluded.total")


def tally(completed: Sequence[tuple[ClaimedJob, str | None, float]],
          failures: Sequence[Failure]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Rows for queue_minute (each attempt's wait; each outcome) and job_histogram (each
    attempt's run and wait time) for a batch of outcomes."""
    minutes: dict[tuple[str, int], list[float]] = {}
    histogram: dict[tuple[str, str, int], list[float]] = {}
    outcomes = [(job, finished, _COMPLETED) for job, _, finished in completed] + [
        (f.job, f.finished_at, _FAILED if f.retry_at is None else _RETRIED)
        for f in failures if f.uses_attempt]
    for job, finished, column in outcomes:
        row = minutes.setdefault((job.queue, int(finished // 60)),
                                 [0.0] * len(MINUTE_COLUMNS))
        row[column] += 1
        wait = max(job.started_at - job.run_at, 0.0)
        row[_WAIT_MS] += wait * 1000
        row[_PICKED] += 1
        for metric, seconds in (("duration", max(finished - job.started_at, 0.0)),
                                ("wait", wait)):
            bucket = bisect.bisect_left(BUCKETS, seconds)
            cell = histogram.setdefault((job.queue, metric, bucket), [0, 0.0])
            cell[0] += 1
            cell[1] += seconds
    return ([(queue, minute, *(int(v) if i != _WAIT_MS else v for i, v in enumerate(row)))
             for (queue, minute), row in sorted(minutes.items())],
            [(*key, int(n), total) for key, (n, total) in sorted(histogram.items())])
