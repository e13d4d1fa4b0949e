"""Single adds over HTTP from many clients at once (issue 22: 16 concurrent clients with
PostgreSQL records, each acknowledged add durable): one `synthbox serve`, its queue
paused so nothing but the adds runs, and --clients keep-alive connections spread over
4 client processes, each POSTing one job per request for --seconds.

Besides adds/s it reports the server's CPU per add (from /proc, so what the client
processes cost is not counted) and, on PostgreSQL, the commits per add
(pg_stat_database.xact_commit): below 1 when concurrent adds share a commit.

Usage: python benchmarks/http_adds.py [--clients 16] [--seconds 10]
                                      [--records-url postgresql://.../throwaway]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from synthbox.bench.served import QUEUE, BenchServer

PROCESSES = 4


def _client_process(port: int, token: str, threads: int, until: float, counts: Any) -> None:
    done = [0] * threads

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        body = json.dumps({"name": "noop"})
        while time.time() < until:
            connection.request("POST", f"/api/v1/queues/{QUEUE}/jobs", body, headers)
            response = connection.getresponse()
            response.read()
            if response.status != 201:
                raise RuntimeError(f"add answered {response.status}")
            done[index] += 1

    workers = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    counts.put(sum(done))


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _commits(records_url: str) -> int | None:
    if not records_url:
        return None
    import psycopg2

    connection = psycopg2.connect(records_url)
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT xact_commit FROM pg_stat_database "
                       "WHERE datname=current_database()")
        return int(cursor.fetchone()[0])
    finally:
        connection.close()


def measure(clients: int, seconds: float, records_url: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="synthbox-http-adds-") as folder:
        served = BenchServer(Path(folder), 1, "", records_url)
        try:
            served.request("POST", f"/api/v1/admin/queues/{QUEUE}/pause")
            time.sleep(2)  # start-up settles
            counts: Any = multiprocessing.Queue()
            until = time.time() + seconds
            shares = [clients // PROCESSES + (i < clients % PROCESSES) for i in range(PROCESSES)]
            cpu, commits = _cpu_seconds(served.process.pid), _commits(records_url)
            started = time.perf_counter()
            processes = [multiprocessing.Process(
                target=_client_process, args=(served.port, served.token, n, until, counts))
                for n in shares if n]
            for process in processes:
                process.start()
            added = sum(counts.get(timeout=seconds + 120) for _ in processes)
            for process in processes:
                process.join()
            elapsed = time.perf_counter() - started
            cpu = _cpu_seconds(served.process.pid) - cpu
            after = _commits(records_url)
        finally:
            served.stop()
    figures: dict[str, Any] = {"clients": clients, "adds": added,
                               "adds_per_s": round(added / elapsed),
                               "server_cpu_us_per_add": round(cpu / added * 1e6)}
    if commits is not None and after is not None:
        figures["commits_per_add"] = round((after - commits) / added, 3)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--records-url", default="")
    args = parser.parse_args()
    figures = measure(args.clients, args.seconds, args.records_url)
    where = "PostgreSQL" if args.records_url else "SQLite"
    print(f"{where} records, {figures['clients']} clients: {figures['adds_per_s']:,} adds/s, "
          f"server CPU {figures['server_cpu_us_per_add']} us an add"
          + (f", {figures['commits_per_add']} commits an add"
             if "commits_per_add" in figures else ""))


if __name__ == "__main__":
    main()
