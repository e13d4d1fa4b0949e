"""Where a job's time goes with PostgreSQL records: client CPU, round trips, server time.

Runs `synthbox bench --backend sqlite --records-url <throwaway database>` (PostgreSQL
records, no Redis) under py-spy, with `log_min_duration_statement = 0` set on that
database alone, so that the server logs every statement it runs for the bench with its
duration. Then prints, per job:

- client CPU: py-spy's samples (500 a second, of the thread holding the interpreter lock:
  Python's own work, not the waits on the server) under one `add()`, under `add_bulk()`
  and under the workers' drain, as microseconds per job;
- round trips and server time: the logged statements grouped by shape (literals taken
  out), with their count per job and the server's time per job (execution only: the
  network and the client are not in it);
- lock waits: `pg_stat_activity` sampled every 5 ms from another connection while the
  bench runs; a sample of a backend of the bench's database waiting on a lock (a row's
  `transactionid` or `tuple`, mostly) counts once, by statement: the queueing on one hot
  row shows here whatever the machine's load (the count, not the time, is compared);
- the commit round trip of this PostgreSQL: `pgbench` on a one-row insert, one client,
  each insert its own transaction (with synchronous_commit on, then off: the difference
  is the WAL flush).

The server log is read from --server-log (default: Debian's
/var/log/postgresql/postgresql-15-main.log, whose lines name the database).

Usage: python benchmarks/profile_pg.py [jobs, default 20000] [--server-log PATH]
                                       [--pgbench-seconds 10]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from compare import PG_ADMIN, throwaway_database
from profile_drain import function

from synthbox.bench.common import latency_jobs

STATEMENT = re.compile(r"@(\S+) LOG:  duration: ([0-9.]+) ms  (?:statement|execute [^:]*): "
                       r"(.*)")
LITERALS = ((re.compile(r"'(?:[^']|'')*'"), "?"), (re.compile(r"\b\d+(?:\.\d+)?(?:e[-+]?\d+)?\b"),
                                                  "?"),
            (re.compile(r"\((?:\?, )+\?\)"), "(?...)"), (re.compile(r"(?:\(\?\.\.\.\), )+"), ""),
            (re.compile(r"\s+"), " "))


def shape(sql: str) -> str:
    for pattern, replacement in LITERALS:
        sql = pattern.sub(replacement, sql)
    return sql.strip()[:110]


def server_statements(log: Path, offset: int, database: str) -> list[tuple[str, float]]:
    """(shape, ms) of each statement the server logged for `database` after `offset`."""
    found = []
    with log.open("rb") as handle:
        handle.seek(offset)
        for raw in handle:
            line = raw.decode(errors="replace")
            match = STATEMENT.search(line)
            if match and match.group(1) == database:
                found.append((shape(match.group(3)), float(match.group(2))))
    return found


class LockWaits:
    """Samples the backends of one database that wait on a lock, in a thread."""

    def __init__(self, database: str):
        self.database = database
        self.samples = 0  # sampling rounds
        self.busy = 0  # samples of a backend running a statement
        self.waits: collections.Counter = collections.Counter()  # (lock kind, statement)
        self.other: collections.Counter = collections.Counter()  # other waits, for context
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LockWaits:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        import psycopg2

        conn = psycopg2.connect(PG_ADMIN)
        conn.autocommit = True
        cursor = conn.cursor()
        while not self._stop.wait(0.005):
            cursor.execute("SELECT wait_event_type, wait_event, query FROM pg_stat_activity "
                           "WHERE datname=%s AND state='active' AND pid<>pg_backend_pid()",
                           (self.database,))
            self.samples += 1
            for kind, what, query in cursor.fetchall():
                self.busy += 1
                if kind == "Lock":
                    self.waits[(what, shape(query)[:70])] += 1
                elif kind is not None:
                    self.other[(kind, what, shape(query)[:40])] += 1
        conn.close()

    def report(self) -> None:
        waiting = sum(self.waits.values())
        print(f"\n## lock waits: {waiting:,} of {self.busy:,} samples of a busy backend "
              f"({100 * waiting / max(self.busy, 1):.1f}%), {self.samples:,} rounds of 5 ms\n")
        for (what, query), count in self.waits.most_common(6):
            print(f"- {count:,} `{what}`: `{query}`")
        print("\nOther waits (not locks), the most sampled:")
        for (kind, what, query), count in self.other.most_common(6):
            print(f"- {count:,} {kind} `{what}`: `{query}`")


def pgbench(seconds: int) -> dict[str, float]:
    """tps and mean latency (ms) of one client inserting one row per transaction."""
    figures = {}
    with throwaway_database(True) as url, tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["psql", "-q", url, "-c",
                        "CREATE TABLE one_row (id bigserial PRIMARY KEY, v int)"], check=True)
        script = Path(tmp) / "insert.sql"
        script.write_text("INSERT INTO one_row (v) VALUES (1);\n")
        for mode in ("on", "off"):
            env = {**os.environ, "PGOPTIONS": f"-c synchronous_commit={mode}"}
            out = subprocess.run(["pgbench", "-n", "-c", "1", "-T", str(seconds), "-f",
                                  str(script), url], capture_output=True, text=True,
                                 env=env, check=True).stdout
            tps = float(re.search(r"tps = ([0-9.]+)", out).group(1))  # type: ignore[union-attr]
            latency = float(re.search(r"latency average = ([0-9.]+) ms",  # type: ignore[union-attr]
                                      out).group(1))
            figures[f"synchronous_commit={mode}"] = {"tps": tps, "latency_ms": latency}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("jobs", nargs="?", type=int, default=20000)
    parser.add_argument("--server-log", default="/var/log/postgresql/postgresql-15-main.log")
    parser.add_argument("--pgbench-seconds", type=int, default=10)
    args = parser.parse_args()
    log = Path(args.server_log)
    import psycopg2

    with throwaway_database(True) as url, tempfile.TemporaryDirectory() as tmp:
        database = url.rsplit("/", 1)[1]
        admin = psycopg2.connect(PG_ADMIN)
        admin.autocommit = True
        admin.cursor().execute(f"ALTER DATABASE {database} SET log_min_duration_statement = 0")
        admin.close()
        offset = log.stat().st_size if log.is_file() else 0
        raw = Path(tmp) / "samples.txt"
        with LockWaits(database) as waits:
            result = subprocess.run(
                ["py-spy", "record", "--gil", "--rate", "500", "--format", "raw", "--output",
                 str(raw), "--", sys.executable, "-m", "synthbox", "bench", "--backend",
                 "sqlite", "--jobs", str(args.jobs), "--records-url", url, "--json"],
                capture_output=True, text=True, timeout=1800)
        if result.returncode != 0 or not raw.exists():
            raise SystemExit(f"py-spy failed:\n{result.stderr[-2000:]}")
        figures = json.loads(next(line for line in reversed(result.stdout.splitlines())
                                  if line.startswith("{")))
        statements = server_statements(log, offset, database) if log.is_file() else []
        report(args.jobs, figures, raw, statements)
        waits.report()
    print("\n## pgbench: one client, a one-row INSERT per transaction\n")
    for mode, measured in pgbench(args.pgbench_seconds).items():
        print(f"- {mode}: {measured['tps']:,.0f} commits/s, "
              f"{measured['latency_ms']:.3f} ms each")


def cpu_samples(raw: Path, under: str, without: str = "") -> tuple[int, collections.Counter]:
    """py-spy samples whose stack passes through `under` and not `without`, and how many
    of them pass through each function called from there."""
    samples, by_function = 0, collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [function(frame) for frame in stack.split(";") if frame]
        at = next((i for i, f in enumerate(frames) if under in f), None)
        if not count.isdigit() or at is None or (without and any(without in f
                                                                  for f in frames)):
            continue
        samples += int(count)
        by_function.update({frame: int(count) for frame in set(frames[at + 1:])})
    return samples, by_function


def report(jobs: int, figures: dict, raw: Path, statements: list[tuple[str, float]]) -> None:
    single, sent = jobs // 2, jobs + latency_jobs(jobs)
    print(f"bench under py-spy and statement logging: {json.dumps(figures)}\n")
    print("## client CPU (py-spy --gil, 2 ms a sample)\n")
    one_add = "add (synthbox/jobs/service.py"
    for title, under, without, count in (
            ("one add() at a time (and the pickup phase's)", one_add, "", single + sent - jobs),
            ("add_bulk() of 1,000", "add_bulk (synthbox/jobs/service.py", one_add,
             jobs - single),
            ("drain, 8 workers", "drain (synthbox/jobs/runner.py", "", jobs)):
        samples, by_function = cpu_samples(raw, under, without)
        print(f"- {title}: {samples:,} samples, {samples * 2000 / max(count, 1):.0f} µs "
              f"of CPU a job")
        for frame, hits in by_function.most_common(8):
            print(f"  - {100 * hits / max(samples, 1):.0f}% {frame}")
    by_shape: dict[str, list[float]] = collections.defaultdict(list)
    for sql, ms in statements:
        by_shape[sql].append(ms)
    if not statements:
        print("\n## server: no statements logged (is --server-log this server's log?)")
        return
    total_ms = sum(ms for _, ms in statements)
    print(f"\n## server: {len(statements):,} statements for {sent:,} jobs "
          f"({len(statements) / sent:.2f} a job), {total_ms:,.0f} ms "
          f"({1000 * total_ms / sent:.0f} µs a job)\n")
    print("| statement | count | a job | server µs a job | µs each |")
    print("| --- | --- | --- | --- | --- |")
    for sql, times in sorted(by_shape.items(), key=lambda kv: -len(kv[1])):
        if len(times) >= sent / 1000:
            print(f"| `{sql}` | {len(times):,} | {len(times) / sent:.3f} | "
                  f"{1000 * sum(times) / sent:.1f} | {1000 * sum(times) / len(times):.0f} |")


if __name__ == "__main__":
    main()
