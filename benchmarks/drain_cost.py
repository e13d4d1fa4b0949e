"""What one drained job costs: client CPU, PostgreSQL server CPU, statements, batch sizes.

Adds JOBS no-op jobs in bulks of 1,000, then drains them and prints, per drained job:

- client CPU (this process's CPU time over the drain);
- server CPU: the utime + stime of the bench database's backends (/proc/<pid>/stat,
  so PostgreSQL must run on this machine), 0 with SQLite records;
- statements a job by kind (claim, completion, other), each one round trip, with the
  wall time spent in each;
- the sizes of the claimed batches (the five largest, with how many claims had each).

Modes: `threads` runs the 8 worker threads as `synthbox bench` does; `one` runs
`engine.drain()` in this thread; `cg` is `one` with callgrind's instrumentation switched
on for the drain alone (run it under `valgrind --tool=callgrind --instr-atstart=no`;
valgrind's "Collected" divided by JOBS is the client's instructions a job). Under
valgrind a job runs about 50 times slower, so `cg` sizes batches as a native run would.

Usage: python benchmarks/drain_cost.py threads|one|cg JOBS [postgresql://... throwaway db]
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

import synthbox.jobs.runner as runner_module
from synthbox.app import build_engine
from synthbox.config import load_settings
from synthbox.jobs.engine import Engine

TICKS = os.sysconf("SC_CLK_TCK")


def backends_cpu(engine: Engine, url: str) -> float:
    """CPU seconds used so far by the backends of the bench's database (PostgreSQL)."""
    if not engine.store.postgres:
        return 0.0
    import psycopg2

    with psycopg2.connect(url) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname=current_database() "
                       "AND pid<>pg_backend_pid()")
        pids = [row[0] for row in cursor.fetchall()]
    conn.close()
    total = 0
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # a connection that has just closed
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def kind_of(sql: str) -> str:
    if "done AS" in sql:
        return "completion"
    return "claim" if "picked AS" in sql or "status='active', attempts_made" in sql else "other"


def drain(engine: Engine, mode: str, jobs: int) -> int:
    if mode == "threads":
        engine.start_workers(["diagnostics"])
        runner = engine.queues["diagnostics"].runner
        assert runner is not None
        while runner.jobs_done < jobs:
            time.sleep(0.002)
        return runner.jobs_done
    if mode == "one":
        return engine.drain("diagnostics")
    pid = str(os.getpid())
    subprocess.run(["callgrind_control", "-i", "on", pid], check=True, capture_output=True)
    ran = engine.drain("diagnostics")
    subprocess.run(["callgrind_control", "-i", "off", pid], check=True, capture_output=True)
    return ran


def measure(mode: str, jobs: int, url: str) -> dict[str, Any]:
    if mode == "cg":
        runner_module.BATCH_SECONDS *= 50
    with tempfile.TemporaryDirectory() as tmp:
        settings = dataclasses.replace(load_settings(env={}), data_dir=tmp, database_url=url,
                                       redis_url="", queues={"diagnostics": {"concurrency": 8}})
        engine = build_engine(settings, namespace=f"drain-cost-{os.getpid()}")
        try:
            service = engine.service("diagnostics")
            for start in range(0, jobs, 1000):
                service.add_bulk([{"name": "noop"}] * min(1000, jobs - start))
            statements: collections.Counter[str] = collections.Counter()
            spent: collections.Counter[str] = collections.Counter()
            batches: collections.Counter[int] = collections.Counter()
            execute_sql, claim = engine.db.execute_sql, engine.store.claim

            def counted_sql(sql: str, params: Any = None, *args: Any, **kwargs: Any) -> Any:
                kind = kind_of(sql)
                statements[kind] += 1
                started = time.perf_counter()
                try:
                    return execute_sql(sql, params, *args, **kwargs)
                finally:
                    spent[kind] += time.perf_counter() - started

            def counted_claim(*args: Any, **kwargs: Any) -> Any:
                claimed = claim(*args, **kwargs)
                batches[len(claimed)] += 1
                return claimed

            engine.db.execute_sql = counted_sql  # type: ignore[method-assign]
            engine.store.claim = counted_claim  # type: ignore[method-assign]
            server, client, started = (backends_cpu(engine, url), time.process_time(),
                                       time.perf_counter())
            ran = drain(engine, mode, jobs)
            seconds = time.perf_counter() - started
            client = time.process_time() - client
            server = backends_cpu(engine, url) - server
            engine.db.execute_sql, engine.store.claim = execute_sql, claim  # type: ignore
        finally:
            engine.stop(timeout=10)
            engine.close()
    return {"mode": mode, "jobs": ran, "drain_per_s": round(ran / seconds),
            "client_cpu_us": round(client / ran * 1e6, 1),
            "server_cpu_us": round(server / ran * 1e6, 1),
            "statements": {k: round(n / ran, 4) for k, n in sorted(statements.items())},
            "statement_wall_us": {k: round(s / ran * 1e6, 1) for k, s in sorted(spent.items())},
            "claims_by_size": dict(sorted(batches.items())[-5:])}


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in ("threads", "one", "cg"):
        raise SystemExit(__doc__)
    print(json.dumps(measure(sys.argv[1], int(sys.argv[2]),
                             sys.argv[3] if len(sys.argv) > 3 else "")))
