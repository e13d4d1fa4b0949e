"""Single adds over HTTP from many clients at once (issue 22: 16 concurrent clients with
PostgreSQL records, each acknowledged add durable): one `synthbox serve`, its queue
paused so nothing but the adds runs, and --clients keep-alive connections spread over
4 client processes, each POSTing one job per request for --seconds.

Besides adds/s it reports the server's CPU per add (from /proc, so what the client
processes cost is not counted) and, on PostgreSQL, the WAL flushes per add
(pg_stat_wal.wal_sync, the durable commits: below 1 when concurrent adds share one).
With --health the clients GET /healthz instead: what the HTTP stack alone answers.

Usage: python benchmarks/http_adds.py [--clients 16] [--seconds 10] [--health]
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


def _client_process(port: int, token: str, threads: int, until: float, counts: Any,
                    health: bool = False) -> None:
    done = [0] * threads
    method, path, body, status = (("GET", "/healthz", None, 200) if health else
                                  ("POST", f"/api/v1/queues/{QUEUE}/jobs",
                                   json.dumps({"name": "noop"}), 201))

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        while time.time() < until:
            connection.request(method, path, body, headers)
            response = connection.getresponse()
            response.read()
            if response.status != status:
                raise RuntimeError(f"{path} answered {response.status}")
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


def _wal_flushes(records_url: str) -> int | None:
    """The server's WAL syncs so far (the whole cluster's: use a quiet server)."""
    if not records_url:
        return None
    import psycopg2

    connection = psycopg2.connect(records_url)
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT wal_sync FROM pg_stat_wal")
        return int(cursor.fetchone()[0])
    finally:
        connection.close()


def measure(clients: int, seconds: float, records_url: str,
            health: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="synthbox-http-adds-") as folder:
        served = BenchServer(Path(folder), 1, "", records_url)
        try:
            served.request("POST", f"/api/v1/admin/queues/{QUEUE}/pause")
            time.sleep(2)  # start-up settles
            counts: Any = multiprocessing.Queue()
            until = time.time() + seconds
            shares = [clients // PROCESSES + (i < clients % PROCESSES) for i in range(PROCESSES)]
            cpu, flushes = _cpu_seconds(served.process.pid), _wal_flushes(records_url)
            started = time.perf_counter()
            processes = [multiprocessing.Process(
                target=_client_process, args=(served.port, served.token, n, until, counts,
                                              health))
                for n in shares if n]
            for process in processes:
                process.start()
            added = sum(counts.get(timeout=seconds + 120) for _ in processes)
            for process in processes:
                process.join()
            elapsed = time.perf_counter() - started
            cpu = _cpu_seconds(served.process.pid) - cpu
            after = _wal_flushes(records_url)
        finally:
            served.stop()
    figures: dict[str, Any] = {"clients": clients, "adds": added,
                               "adds_per_s": round(added / elapsed),
                               "server_cpu_us_per_add": round(cpu / added * 1e6)}
    if flushes is not None and after is not None:
        figures["wal_flushes_per_add"] = round((after - flushes) / added, 3)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--records-url", default="")
    parser.add_argument("--health", action="store_true",
                        help="GET /healthz instead of adding: the HTTP stack's own rate")
    args = parser.parse_args()
    figures = measure(args.clients, args.seconds, args.records_url, args.health)
    where = "PostgreSQL" if args.records_url else "SQLite"
    what = "GET /healthz" if args.health else "adds"
    print(f"{where} records, {figures['clients']} clients: {figures['adds_per_s']:,} {what}/s, "
          f"server CPU {figures['server_cpu_us_per_add']} us each"
          + (f", {figures['wal_flushes_per_add']} WAL flushes each"
             if "wal_flushes_per_add" in figures else ""))


if __name__ == "__main__":
    main()
