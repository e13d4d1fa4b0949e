"""SynthBox with PostgreSQL records against the PostgreSQL-native job queues
(graphile-worker, pg-boss, Procrastinate) and BullMQ, in one run, the same way.

Each system, in its own fresh process and on its own throwaway PostgreSQL database (made
from SYNTHBOX_BENCH_PG, default postgresql://postgres@127.0.0.1:5432/postgres), adds N
no-op jobs (half one call at a time, half in bulks of 1,000), drains the full queue with
8 workers, then sends 1,000 jobs at 100 a second to idle workers (pickup latency), and
reports its peak RSS: what `synthbox bench` measures. The `commit-floor` column is
PostgreSQL itself: `pgbench`, one client, a one-row INSERT per transaction, back to back
(the most single adds a second a durable queue could take) and at 100 a second (the
commit's latency when the machine is otherwise idle: no pickup of an added job can beat
its commit). SynthBox runs as `synthbox bench`
with PostgreSQL records, without Redis and with it (REDIS_URL, default 127.0.0.1:6379,
under keys of its own, as BullMQ). The systems alternate within each round; the tables
give medians and each peer's ratio to SynthBox.

The peers are installed by this script into a temporary folder (npm for the Node.js
ones, a throwaway virtual environment for Procrastinate), never into the repository;
--peers-dir keeps an installation to reuse.

Usage: python benchmarks/pg_peers.py [--jobs 20000] [--rounds 3] [--systems a,b,...]
                                     [--peers-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from compare import cell, run_json, throwaway_database

from synthbox.bench.common import LATENCY_RATE, latency_jobs

HERE = Path(__file__).resolve().parent
PEERS = HERE / "peers"
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
NPM_PACKAGES = ("graphile-worker@0.17.3", "pg-boss@10.4.2", "bullmq@6.7.6", "ioredis@6.1.0")
PIP_PACKAGES = ("procrastinate==3.10.0", "psycopg[binary]==3.3.9")
SYSTEMS = ("synthbox-pg", "synthbox-redis+pg", "bullmq", "graphile-worker", "pg-boss",
           "procrastinate", "commit-floor")
ROWS = (("enqueue_per_s", "enqueue, one call at a time (jobs/s)", True),
        ("enqueue_bulk_per_s", "enqueue, bulks of 1,000 (jobs/s)", True),
        ("drain_per_s", "drain of a full queue, 8 workers (jobs/s)", True),
        ("pickup_p50_ms", "pickup p50 at 100 jobs/s (ms)", False),
        ("pickup_p99_ms", "pickup p99 at 100 jobs/s (ms)", False),
        ("peak_rss_mb", "peak RSS, producer and workers (MB)", False))


def install(folder: Path, systems: list[str]) -> Path:
    """npm and pip packages into `folder`; the Python that runs Procrastinate."""
    python = folder / "venv" / "bin" / "python"
    if any(s in systems for s in ("bullmq", "graphile-worker", "pg-boss")) and \
            not (folder / "node_modules" / "graphile-worker").exists():
        (folder / "package.json").write_text('{"private": true}\n')
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent",
                        *NPM_PACKAGES], cwd=folder, check=True, stdout=subprocess.DEVNULL)
    if "procrastinate" in systems and not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(folder / "venv")], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PIP_PACKAGES], check=True,
                       stdout=subprocess.DEVNULL)
    for script in PEERS.iterdir():
        shutil.copy(script, folder / script.name)  # so that require() finds node_modules
    return python


def run_system(system: str, jobs: int, folder: Path, python: Path) -> dict:
    if system == "bullmq":
        return run_json(["node", str(folder / "bullmq.js"), str(jobs), REDIS_URL])
    with throwaway_database(True) as database:
        if system == "commit-floor":
            return commit_floor(jobs, database, folder)
        if system.startswith("synthbox"):
            backend = "redis" if system == "synthbox-redis+pg" else "sqlite"
            return run_json([sys.executable, "-m", "synthbox", "bench", "--backend", backend,
                             "--jobs", str(jobs), "--json", "--records-url", database])
        if system == "procrastinate":
            return run_json([str(python), str(folder / "procrastinate_peer.py"), str(jobs),
                             database])
        script = {"graphile-worker": "graphile_worker.js", "pg-boss": "pg_boss.js"}[system]
        return run_json(["node", str(folder / script), str(jobs), database])


def commit_floor(jobs: int, database: str, folder: Path) -> dict:
    """`pgbench`'s one-row INSERTs, as many as the bench's single adds back to back (tps),
    then as many as its pickup jobs at their rate (p50/p99 of each transaction's own time,
    its schedule lag left out)."""
    subprocess.run(["psql", "-q", database, "-c",
                    "CREATE TABLE one_row (id bigserial PRIMARY KEY, v int)"], check=True)
    script = folder / "one_row.sql"
    script.write_text("INSERT INTO one_row (v) VALUES (1);\n")
    pgbench = ["pgbench", "-n", "-c", "1", "-f", str(script)]
    out = subprocess.run([*pgbench, "-t", str(max(1, jobs // 2)), database], capture_output=True,
                         text=True, check=True).stdout
    tps = float(re.search(r"tps = ([0-9.]+)", out).group(1))  # type: ignore[union-attr]
    logs = folder / "floor-logs"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir()
    subprocess.run([*pgbench, "-R", str(LATENCY_RATE), "-t", str(latency_jobs(jobs)), "--log",
                    "--log-prefix", str(logs / "commit"), database], capture_output=True,
                   check=True)
    # a line: client transaction time_us script epoch epoch_us lag_us
    times = sorted((int(f[2]) - int(f[6])) / 1000 for path in logs.iterdir()
                   for f in map(str.split, path.read_text().splitlines()))
    return {"enqueue_per_s": round(tps), "pickup_p50_ms": round(statistics.median(times), 2),
            "pickup_p99_ms": round(times[round(0.99 * len(times)) - 1], 2),
            "version": subprocess.run(["pgbench", "--version"], capture_output=True,
                                      text=True).stdout.strip(),
            "settings": "one client, INSERT of one row a transaction, synchronous_commit on"}


def report(jobs: int, rounds: list[dict[str, dict]], systems: list[str]) -> None:
    def median(system: str, figure: str) -> float | None:
        values = [r[system][figure] for r in rounds if r[system].get(figure) is not None]
        return statistics.median(values) if values else None

    print(f"\n### {jobs:,} no-op jobs, median of {len(rounds)} rounds\n")
    print("| figure | " + " | ".join(systems) + " |")
    print("| --- |" + " --- |" * len(systems))
    for figure, label, _ in ROWS:
        print(f"| {label} | " + " | ".join(cell(median(s, figure)) for s in systems) + " |")
    ours = "synthbox-pg" if "synthbox-pg" in systems else systems[0]
    print(f"\nRatio of {ours} to each system (above 1: {ours} is better)\n")
    print("| figure | " + " | ".join(systems) + " |")
    print("| --- |" + " --- |" * len(systems))
    for figure, label, higher_is_better in ROWS[:5]:
        mine = median(ours, figure)
        ratios = []
        for system in systems:
            theirs = median(system, figure)
            if not mine or not theirs:
                ratios.append("-")
            else:
                ratios.append(f"{mine / theirs if higher_is_better else theirs / mine:.2f}")
        print(f"| {label} | " + " | ".join(ratios) + " |")
    print("\nVersions and settings\n")
    for system in systems:
        last = rounds[-1][system]
        print(f"- {system}: {last.get('version', 'this tree')}; "
              f"{last.get('settings', 'queue diagnostics, concurrency 8')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--peers-dir", default="", help="install the peers here and keep them")
    args = parser.parse_args()
    systems = args.systems.split(",")
    for system in systems:
        if system not in SYSTEMS:
            parser.error(f"--systems: {system!r} is not one of {', '.join(SYSTEMS)}")
    folder = Path(args.peers_dir or tempfile.mkdtemp(prefix="synthbox-peers-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        python = install(folder, systems)
        rounds = []
        for number in range(args.rounds):
            rounds.append({system: run_system(system, args.jobs, folder, python)
                           for system in systems})
            print(f"round {number + 1}: " + ", ".join(
                f"{s} drain {rounds[-1][s].get('drain_per_s', '-')}" for s in systems),
                file=sys.stderr, flush=True)
        report(args.jobs, rounds, systems)
    finally:
        if not args.peers_dir:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
