"""Raw Huey on the same backend and the same machine as `synthbox bench`: the floor
SynthBox's durable design is compared with (Huey keeps no record per job).

Measures what `synthbox bench` measures, the same way: enqueue jobs/s (one call at a
time), drain jobs/s (a pre-filled queue to empty, 8 worker threads), pickup latency
p50/p99 at 100 jobs/s, peak RSS.

Usage: python benchmarks/huey_baseline.py [sqlite|redis] [jobs] [--json]
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from typing import Any

from huey import RedisHuey, SqliteHuey
from huey.consumer import Consumer

LATENCY_RATE = 100
LATENCY_JOBS = 1000  # the same samples as synthbox.bench.common.latency_jobs()


class ThreadConsumer(Consumer):
    """Huey's consumer in a thread of this process: signals stay with the main thread."""

    def _set_signal_handlers(self) -> None:
        pass


def measure(backend: str, jobs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="huey-bench-") as tmp:
        if backend == "redis":
            huey = RedisHuey(f"huey-bench-{os.getpid()}",
                             url=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
        else:
            huey = SqliteHuey(f"huey-bench-{os.getpid()}", filename=f"{tmp}/huey.db")
        done = []
        picked: dict[int, float] = {}
        lock = threading.Lock()

        @huey.task(name="noop")
        def noop(n: int, sent: float) -> None:
            with lock:
                done.append(n)
                if sent:
                    picked[n] = (time.time() - sent) * 1000

        started = time.perf_counter()
        for i in range(jobs):
            noop(i, 0.0)
        enqueue = jobs / (time.perf_counter() - started)

        consumer = ThreadConsumer(huey, workers=8, worker_type="thread", periodic=False,
                            initial_delay=0.001, max_delay=0.01, check_worker_health=False)
        thread = threading.Thread(target=consumer.run, daemon=True)
        started = time.perf_counter()
        thread.start()
        while len(done) < jobs:
            time.sleep(0.002)
        drain = jobs / (time.perf_counter() - started)

        samples = min(LATENCY_JOBS, max(20, jobs // 20))
        next_at = time.perf_counter()
        for i in range(samples):
            next_at += 1 / LATENCY_RATE
            noop(jobs + i, time.time())
            time.sleep(max(0.0, next_at - time.perf_counter()))
        deadline = time.monotonic() + 30
        while len(picked) < samples and time.monotonic() < deadline:
            time.sleep(0.01)
        consumer.stop(graceful=False)
        huey.flush()
        latencies = sorted(picked.values())
        return {"system": "huey", "backend": backend, "jobs": jobs,
                "enqueue_per_s": round(enqueue), "drain_per_s": round(drain),
                "pickup_p50_ms": round(statistics.median(latencies), 2),
                "pickup_p99_ms": round(latencies[min(len(latencies) - 1,
                                                     round(0.99 * len(latencies)) - 1)], 2),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                                     1)}


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--json"]
    backend = args[0] if args else "sqlite"
    jobs = int(args[1]) if len(args) > 1 else 20000
    import logging

    logging.basicConfig(level=logging.ERROR)
    figures = measure(backend, jobs)
    if "--json" in sys.argv:
        print(json.dumps(figures))
    else:
        print(figures)


if __name__ == "__main__":
    main()
