"""`synthbox bench`: enqueue and drain no-op jobs with the real engine, and measure.

Figures: enqueue jobs/s (half the jobs one `add()` at a time, half through
`add_bulk()` 1,000 at a time), drain jobs/s (a pre-filled queue to empty), pickup
latency p50/p99 (enqueue to claim, 1,000 jobs at 100 jobs/s with workers idle), and
the process's peak RSS. Records go to a temporary SQLite file (or, with
`--records-url`, a PostgreSQL database you give it); the Redis
transport uses REDIS_URL (or 127.0.0.1:6379) under keys of its own, so a bench never
touches a running deployment's jobs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from typing import Any

import click

from synthbox.app import build_engine
from synthbox.bench.common import (
    BULK_SIZE,
    HTTP_BULK_SIZE,
    HTTP_CLIENTS,
    LATENCY_RATE,
    latency_jobs,
    percentile,
)
from synthbox.bench.served import measure_served
from synthbox.config import Settings
from synthbox.jobs.engine import Engine
from synthbox.jobs.runner import QueueRunner


def measure(settings: Settings, backend: str, jobs: int, progress: bool = False,
            records_url: str = "") -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="synthbox-bench-") as tmp:
        redis_url = (settings.redis_url or "redis://127.0.0.1:6379/0") if backend == "redis" \
            else ""
        bench_settings = dataclasses.replace(
            settings, data_dir=tmp, database_url=records_url, redis_url=redis_url,
            queues={"diagnostics": {"concurrency": 8}})
        engine = build_engine(bench_settings, namespace=f"synthbox-bench-{os.getpid()}")
        try:
            return _measure(engine, backend, jobs, progress)
        finally:
            engine.stop(timeout=10)
            engine.close()


def _measure(engine: Engine, backend: str, jobs: int, progress: bool) -> dict[str, Any]:
    service = engine.service("diagnostics")

    single = max(1, jobs // 2)
    started = time.perf_counter()
    with click.progressbar(length=jobs, label="enqueue", file=sys.stderr,
                           hidden=not progress) as bar:
        for i in range(single):
            service.add("noop")
            if i % 500 == 0:
                bar.update(500)
        single_seconds = time.perf_counter() - started
        started = time.perf_counter()
        for start in range(single, jobs, BULK_SIZE):
            service.add_bulk([{"name": "noop"}] * min(BULK_SIZE, jobs - start))
            bar.update(BULK_SIZE)
        bulk_seconds = time.perf_counter() - started

    drain_seconds, runner = _drain(engine, jobs, progress)

    ids = []
    samples = latency_jobs(jobs)
    next_at = time.perf_counter()
    for _ in range(samples):
        next_at += 1 / LATENCY_RATE
        ids.append(int(service.add("noop")["id"]))
        time.sleep(max(0.0, next_at - time.perf_counter()))
    deadline = time.monotonic() + 30
    while runner.jobs_done < jobs + samples and time.monotonic() < deadline:
        time.sleep(0.01)
    marks = ",".join("?" * len(ids))
    pickups = [(started_at - created_at) * 1000 for created_at, started_at in
               engine.store.execute(
                   f"SELECT created_at, started_at FROM job WHERE id IN ({marks})",
                   ids).fetchall() if started_at is not None]
    return {
        "backend": backend,
        "records": engine.backends()["records"].split(" (")[0],
        "jobs": jobs,
        "enqueue_per_s": round(single / single_seconds),
        "enqueue_bulk_per_s": round((jobs - single) / bulk_seconds) if jobs > single else 0,
        "drain_per_s": round(jobs / drain_seconds),
        "pickup_p50_ms": round(statistics.median(pickups), 2) if pickups else None,
        "pickup_p99_ms": round(percentile(pickups, 99), 2) if pickups else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _drain(engine: Engine, jobs: int, progress: bool) -> tuple[float, QueueRunner]:
    """Seconds the workers took to run the queue's `jobs`; returns once they are idle
    again (pickup is of jobs added while the workers are idle)."""
    started = time.perf_counter()
    engine.start_workers(["diagnostics"])
    runner = engine.queues["diagnostics"].runner
    assert runner is not None
    with click.progressbar(length=jobs, label="drain  ", file=sys.stderr,
                           hidden=not progress) as bar:
        shown = 0
        while runner.jobs_done < jobs:
            time.sleep(0.002)
            bar.update(runner.jobs_done - shown)
            shown = runner.jobs_done
    seconds = time.perf_counter() - started
    settle = time.monotonic() + 10
    while runner.draining() and time.monotonic() < settle:
        time.sleep(0.001)
    return seconds, runner


def run_bench(settings: Settings, backend: str, jobs: int, as_json: bool,
              records_url: str = "", served: bool = False, instances: int = 1) -> int:
    import logging

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("huey").setLevel(logging.ERROR)
    if served:
        figures = measure_served(backend, jobs, instances, settings.redis_url, records_url)
    else:
        figures = measure(settings, backend, jobs,
                          progress=sys.stderr.isatty() and not as_json, records_url=records_url)
    if as_json:
        click.echo(json.dumps(figures))
    elif served:
        _print_served(figures)
    else:
        _print_engine(figures)
    return 0


def _print_engine(figures: dict[str, Any]) -> None:
    click.echo(f"backend {figures['backend']}, records {figures['records']}, "
               f"{figures['jobs']} no-op jobs")
    click.echo(f"  enqueue   {figures['enqueue_per_s']:>10,} jobs/s (one add() at a time)")
    click.echo(f"  bulk      {figures['enqueue_bulk_per_s']:>10,} jobs/s "
               f"(add_bulk(), {BULK_SIZE:,} at a time)")
    click.echo(f"  drain     {figures['drain_per_s']:>10,} jobs/s (8 workers)")
    click.echo(f"  pickup    p50 {figures['pickup_p50_ms']} ms, p99 "
               f"{figures['pickup_p99_ms']} ms (at {LATENCY_RATE} jobs/s)")
    click.echo(f"  peak RSS  {figures['peak_rss_mb']} MB")


def _print_served(figures: dict[str, Any]) -> None:

    click.echo(f"synthbox serve x{figures['instances']}, backend {figures['backend']}, "
               f"records {figures['records']}, {figures['jobs']} no-op jobs over HTTP")
    click.echo(f"  HTTP enqueue {figures['http_single_per_s']:>9,} jobs/s "
               f"(one per request, {HTTP_CLIENTS} connections)")
    click.echo(f"  HTTP bulk    {figures['http_bulk_per_s']:>9,} jobs/s "
               f"({HTTP_BULK_SIZE:,} per request)")
    click.echo(f"  drain        {figures['drain_per_s']:>9,} jobs/s")
    click.echo(f"  pickup       p50 {figures['pickup_p50_ms']} ms, p99 "
               f"{figures['pickup_p99_ms']} ms (at {LATENCY_RATE} jobs/s)")
    click.echo(f"  RSS          idle {figures['idle_rss_mb']} MB, after 3 sign-ins "
               f"{figures['signed_in_rss_mb']} MB, loaded "
               f"{figures['loaded_rss_mb']} MB per instance"
               + (f"; supervisor {figures['supervisor_rss_mb']} MB"
                  if figures["supervisor_rss_mb"] else ""))
