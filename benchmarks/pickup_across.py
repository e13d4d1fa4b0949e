"""Pickup latency across instances that share PostgreSQL records and have no Redis.

One engine adds no-op jobs at 100 a second and runs no workers; a second engine, on the
same throwaway PostgreSQL database (made from SYNTHBOX_BENCH_PG), runs the workers.
Pickup is each job's start minus its creation, read from the records: what the doorbell
between the instances costs (LISTEN/NOTIFY; before it, the upkeep sweep).

Usage: python benchmarks/pickup_across.py [jobs, default 300]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from compare import throwaway_database

from synthbox.app import build_engine
from synthbox.config import load_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("jobs", nargs="?", type=int, default=300)
    args = parser.parse_args()
    with throwaway_database(True) as url, tempfile.TemporaryDirectory() as working, \
            tempfile.TemporaryDirectory() as adding:
        workers = build_engine(load_settings({"data_dir": working, "database_url": url},
                                             env={}))
        adder = build_engine(load_settings({"data_dir": adding, "database_url": url}, env={}))
        try:
            workers.start_workers()
            time.sleep(1.0)  # the listener connects
            service = adder.service("diagnostics")
            start = time.time()
            for i in range(args.jobs):
                service.add("noop", {})
                time.sleep(max(start + (i + 1) / 100 - time.time(), 0))
            deadline = time.time() + 30
            while time.time() < deadline and adder.store.execute(
                    "SELECT COUNT(*) FROM job WHERE status<>'completed'").fetchone()[0]:
                time.sleep(0.1)
            ms = sorted(row[0] * 1000 for row in adder.store.execute(
                "SELECT started_at - created_at FROM job WHERE started_at IS NOT NULL"
            ).fetchall())
        finally:
            workers.stop(5)
            workers.close()
            adder.close()
    p99 = ms[max(int(len(ms) * 0.99) - 1, 0)] if ms else float("nan")
    print(f"{len(ms)} of {args.jobs} jobs run; pickup p50 "
          f"{statistics.median(ms) if ms else float('nan'):.2f} ms, p99 {p99:.2f} ms, "
          f"max {ms[-1] if ms else float('nan'):.1f} ms")


if __name__ == "__main__":
    main()
