"""SynthBox against raw Huey on the same backend, in the same run, several times: medians
and SynthBox/Huey ratios (a noisy machine slows both, not the ratio).

For each backend and round, in fresh processes and alternately: `synthbox bench` (the
engine in one process), `benchmarks/huey_baseline.py` (raw Huey, 8 threads), and
`synthbox bench --served` for each instance count (a real `synthbox serve`, or cluster
mode, measured over HTTP). Prints Markdown tables of the medians.

Backends: sqlite (everything in SQLite), redis (Redis transport, SQLite records),
redis+pg (Redis transport, PostgreSQL records in a throwaway database made from
SYNTHBOX_BENCH_PG, default postgresql://postgres@127.0.0.1:5432/postgres).

Usage: python benchmarks/compare.py [--backends sqlite,redis,redis+pg] [--jobs 20000]
                                    [--rounds 3] [--instances 1,2]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
PG_ADMIN = os.environ.get("SYNTHBOX_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
ENGINE_ROWS = (("enqueue_per_s", "enqueue, one add() at a time (jobs/s)", True),
               ("enqueue_bulk_per_s", "enqueue, add_bulk() of 1,000 (jobs/s)", False),
               ("drain_per_s", "drain, 8 workers (jobs/s)", True),
               ("pickup_p50_ms", "pickup p50 at 100 jobs/s (ms)", True),
               ("pickup_p99_ms", "pickup p99 at 100 jobs/s (ms)", True),
               ("peak_rss_mb", "peak RSS (MB)", True))
SERVED_ROWS = (("http_single_per_s", "HTTP enqueue, one job per request (jobs/s)"),
               ("http_bulk_per_s", "HTTP bulk enqueue, 1,000 per request (jobs/s)"),
               ("drain_per_s", "drain (jobs/s)"),
               ("pickup_p50_ms", "pickup p50 at 100 jobs/s (ms)"),
               ("pickup_p99_ms", "pickup p99 at 100 jobs/s (ms)"),
               ("idle_rss_mb", "idle RSS per instance (MB)"),
               ("signed_in_rss_mb", "RSS after 3 sign-ins (MB)"),
               ("loaded_rss_mb", "loaded (peak) RSS per instance (MB)"))


def run_json(command: list[str]) -> dict:
    """Run a bench in its own process group; its JSON line. Past 30 minutes the whole
    group is killed, servers it started included."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        out, err = process.communicate(timeout=1800)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise SystemExit(f"{' '.join(command)} took more than 30 minutes") from None
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1])


@contextmanager
def throwaway_database(needed: bool) -> Iterator[str]:
    if not needed:
        yield ""
        return
    import psycopg2

    name = f"synthbox_bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(PG_ADMIN)
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {name}")
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def one_round(backend: str, jobs: int, instances: list[int]) -> dict[str, dict]:
    transport = "sqlite" if backend == "sqlite" else "redis"
    bench = [sys.executable, "-m", "synthbox", "bench", "--backend", transport,
             "--jobs", str(jobs), "--json"]
    figures = {}
    with throwaway_database(backend == "redis+pg") as records:
        extra = ["--records-url", records] if records else []
        figures["engine"] = run_json(bench + extra)
    figures["huey"] = run_json([sys.executable, str(HERE / "huey_baseline.py"), transport,
                           str(jobs), "--json"])
    for count in instances:
        with throwaway_database(backend == "redis+pg") as records:
            extra = ["--records-url", records] if records else []
            figures[f"served{count}"] = run_json(bench + extra + ["--served", "--instances",
                                                             str(count)])
    return figures


def median(rounds: list[dict[str, dict]], part: str, figure: str) -> float | None:
    values = [r[part].get(figure) for r in rounds if r[part].get(figure) is not None]
    return statistics.median(values) if values else None


def cell(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}"


def report(backend: str, jobs: int, rounds: list[dict[str, dict]],
           instances: list[int]) -> None:
    print(f"\n### {backend}: {jobs:,} no-op jobs, median of {len(rounds)} rounds\n")
    print("| figure | SynthBox | raw Huey | ratio |")
    print("| --- | --- | --- | --- |")
    for figure, label, compared in ENGINE_ROWS:
        ours = median(rounds, "engine", figure)
        theirs = median(rounds, "huey", figure) if compared else None
        ratio = f"{ours / theirs:.2f}" if ours and theirs else ""
        print(f"| {label} | {cell(ours)} | {cell(theirs)} | {ratio} |")
    if not instances:
        return
    print(f"\n`synthbox serve` over HTTP ({backend})\n")
    print("| figure | " + " | ".join(f"{n} instance{'s' if n > 1 else ''}"
                                      for n in instances) + " |")
    print("| --- |" + " --- |" * len(instances))
    for figure, label in SERVED_ROWS:
        print(f"| {label} | " + " | ".join(cell(median(rounds, f"served{n}", figure))
                                           for n in instances) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,redis,redis+pg")
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--instances", default="1,2",
                        help="served instance counts; empty for the engine only")
    args = parser.parse_args()
    instances = [int(n) for n in args.instances.split(",") if n]
    for backend in args.backends.split(","):
        if backend not in ("sqlite", "redis", "redis+pg"):
            parser.error(f"--backends: {backend!r} is not one of sqlite, redis, redis+pg")
        rounds = [one_round(backend, args.jobs, instances) for _ in range(args.rounds)]
        report(backend, args.jobs, rounds, instances)


if __name__ == "__main__":
    main()
