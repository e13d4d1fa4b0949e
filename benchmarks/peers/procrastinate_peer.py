"""Procrastinate on its own PostgreSQL database, measured as `synthbox bench` measures:
half the jobs deferred one call at a time, the rest by `batch_defer_async` of 1,000, a
drain of the full queue by one worker of concurrency 8 (LISTEN/NOTIFY on), then 1,000
jobs at 100 a second with the worker idle. Run by benchmarks/pg_peers.py with the
Python of a throwaway virtual environment that holds Procrastinate.

Usage: python procrastinate_peer.py JOBS DATABASE_URL
"""

from __future__ import annotations

import asyncio
import json
import resource
import statistics
import sys
import time
from importlib.metadata import version

from procrastinate import App, PsycopgConnector

CONCURRENCY = 8
BULK_SIZE = 1000
LATENCY_RATE = 100


def percentile(values: list[float], pct: float) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))]


async def until(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        await asyncio.sleep(0.002)
    return predicate()


async def measure(jobs: int, url: str) -> dict:
    app = App(connector=PsycopgConnector(conninfo=url, min_size=2, max_size=CONCURRENCY + 4))
    done: list[int] = []
    pickups: list[float] = []

    @app.task(name="noop")
    async def noop(sent: float) -> None:
        at = time.time()
        done.append(1)
        if sent:
            pickups.append((at - sent) * 1000)

    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        single = max(1, jobs // 2)
        started = time.perf_counter()
        for _ in range(single):
            await noop.defer_async(sent=0.0)
        single_seconds = time.perf_counter() - started
        started = time.perf_counter()
        for start in range(single, jobs, BULK_SIZE):
            await noop.batch_defer_async(*[{"sent": 0.0}] * min(BULK_SIZE, jobs - start))
        bulk_seconds = time.perf_counter() - started

        started = time.perf_counter()
        worker = asyncio.create_task(app.run_worker_async(
            concurrency=CONCURRENCY, wait=True, listen_notify=True,
            install_signal_handlers=False))
        if not await until(lambda: len(done) >= jobs, 1200):
            raise SystemExit(f"drain stopped at {len(done)}")
        drain_seconds = time.perf_counter() - started

        samples = min(1000, max(20, jobs // 20))
        next_at = time.perf_counter()
        for _ in range(samples):
            next_at += 1 / LATENCY_RATE
            await noop.defer_async(sent=time.time())
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        await until(lambda: len(pickups) >= samples, 30)
        worker.cancel()
        try:
            await worker
        except asyncio.CancelledError:
            pass
    return {
        "system": "procrastinate", "version": version("procrastinate"), "jobs": jobs,
        "enqueue_per_s": round(single / single_seconds),
        "enqueue_bulk_per_s": round((jobs - single) / bulk_seconds) if jobs > single else 0,
        "drain_per_s": round(jobs / drain_seconds),
        "pickup_p50_ms": round(statistics.median(pickups), 2) if pickups else None,
        "pickup_p99_ms": round(percentile(pickups, 99), 2) if pickups else None,
        "pickup_samples": len(pickups),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "settings": f"one worker, concurrency {CONCURRENCY}, LISTEN/NOTIFY, "
                    f"psycopg {version('psycopg')} pool of {CONCURRENCY + 4}",
    }


def main() -> None:
    import logging

    logging.basicConfig(level=logging.ERROR)
    jobs, url = int(sys.argv[1]), sys.argv[2]
    print(json.dumps(asyncio.run(measure(jobs, url))))


if __name__ == "__main__":
    main()
