"""The Faktory protocol listener under load, from a generator that speaks the protocol
directly (several processes, one connection each), so no client library is measured:

- PUSH: each connection pushes its share one job at a time;
- PUSHB: each connection pushes its share in batches of 1,000;
- FETCH+ACK: each connection fetches and acknowledges until the queue is empty (end to
  end: claimed, handed out, completed in the records);
- pickup: one connection waits in FETCH while another pushes one job; the time from
  before the PUSH to the job in the worker's hands, p50 and p99 over --samples pushes.

Then the PyPI `faktory` client in the same run: `client.queue()` one job at a time, and its
Worker (threads, 8) draining them. One `synthbox serve` (SQLite records, the default) on a
fresh data directory.

Usage: python benchmarks/faktory_protocol.py [--jobs 20000] [--connections 8]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Conn:
    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")
        self.reply()
        self.command(b'HELLO {"v":2}')

    def reply(self) -> bytes | None:
        line = self.file.readline().rstrip(b"\r\n")
        if line[:1] == b"$":
            size = int(line[1:])
            return None if size < 0 else self.file.read(size + 2)[:-2]
        if line[:1] == b"-":
            raise RuntimeError(line.decode())
        return line[1:]

    def command(self, line: bytes) -> bytes | None:
        self.sock.sendall(line + b"\r\n")
        return self.reply()


def _job(queue: str, n: int, tag: str) -> dict[str, Any]:
    return {"jid": f"{tag}-{n}", "jobtype": "noop", "args": [n], "queue": queue}


def push_share(port: int, queue: str, start: int, count: int, bulk: int, tag: str) -> None:
    conn = Conn(port)
    if bulk:
        for first in range(start, start + count, bulk):
            jobs = [_job(queue, n, tag) for n in range(first, min(first + bulk, start + count))]
            assert conn.command(b"PUSHB " + json.dumps(jobs).encode()) == b"{}"
    else:
        for n in range(start, start + count):
            conn.command(b"PUSH " + json.dumps(_job(queue, n, tag)).encode())


def fetch_share(port: int, queue: str, done: Any) -> None:
    conn = Conn(port)
    last = time.perf_counter()
    fetch = f"FETCH {queue}".encode()
    while True:
        job = conn.command(fetch)
        if job is None:
            break
        jid = json.loads(job)["jid"]
        conn.command(b'ACK {"jid":"' + jid.encode() + b'"}')
        last = time.perf_counter()
    done.put(last)


def timed(target: Any, shares: list[tuple[Any, ...]]) -> float:
    processes = [multiprocessing.Process(target=target, args=share) for share in shares]
    started = time.perf_counter()
    for process in processes:
        process.start()
    for process in processes:
        process.join()
        assert process.exitcode == 0
    return time.perf_counter() - started


def pushes(port: int, jobs: int, connections: int, queue: str, bulk: int, tag: str) -> float:
    per = jobs // connections
    return jobs / timed(push_share, [(port, queue, i * per, per, bulk, tag)
                                     for i in range(connections)])


def fetches(port: int, jobs: int, connections: int, queue: str) -> float:
    done: Any = multiprocessing.Queue()
    started = time.perf_counter()
    timed(fetch_share, [(port, queue, done) for _ in range(connections)])
    last = max(done.get() for _ in range(connections))
    return jobs / (last - started)


def pickup(port: int, samples: int) -> tuple[float, float]:
    worker, pusher = Conn(port), Conn(port)
    took: list[float] = []
    for n in range(samples):
        got: list[float] = []
        waiting = threading.Thread(target=lambda got=got: (
            worker.command(b"FETCH pickup"), got.append(time.perf_counter())))
        waiting.start()
        time.sleep(0.01)  # the FETCH is waiting
        before = time.perf_counter()
        pusher.command(b"PUSH " + json.dumps(_job("pickup", n, "pick")).encode())
        waiting.join()
        took.append((got[0] - before) * 1000)
        worker.command(b'ACK {"jid":"pick-' + str(n).encode() + b'"}')
    took.sort()
    return statistics.median(took), took[min(len(took) - 1, int(len(took) * 0.99))]


def stats(http: int, token: str, queue: str) -> dict[str, int]:
    request = urllib.request.Request(f"http://127.0.0.1:{http}/api/v1/queues/{queue}/stats",
                                     headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request) as answer:
        return json.loads(answer.read())["data"]


def python_client(port: int, http: int, token: str, jobs: int) -> tuple[float, float]:
    """The PyPI client: queue() one at a time, then its Worker (8 threads) draining."""
    import faktory  # only here: the generator above needs no client

    url = f"tcp://127.0.0.1:{port}"
    started = time.perf_counter()
    with faktory.connection(url) as client:
        for n in range(jobs):
            client.queue("noop", args=(n,), queue="pyclient")
    push_rate = jobs / (time.perf_counter() - started)
    worker = subprocess.Popen([sys.executable, "-c", (
        "from faktory import Worker\n"
        f"w = Worker(faktory={url!r}, queues=['pyclient'], concurrency=8, use_threads=True)\n"
        "w.register('noop', lambda n: None)\nw.run()\n")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = time.perf_counter()
    try:
        while stats(http, token, "pyclient")["completed"] < jobs:
            time.sleep(0.05)
    finally:
        worker.kill()
        worker.wait()
    return push_rate, jobs / (time.perf_counter() - started)


def serve(folder: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    port, http = free_port(), free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SYNTHBOX_")
              and k not in ("REDIS_URL", "DATABASE_URL")},
           "SYNTHBOX_DATA_DIR": str(folder), "SYNTHBOX_PORT": str(http),
           "SYNTHBOX_FAKTORY_ADDRESS": f"127.0.0.1:{port}", "SYNTHBOX_LOG_LEVEL": "warning"}
    process = subprocess.Popen([sys.executable, "-m", "synthbox", "serve"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, port, http
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("serve did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--client-jobs", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        process, port, http = serve(Path(folder) / "data")
        try:
            token = (Path(folder) / "data" / "admin-token").read_text().strip()
            Conn(port).command(b'PUSH {"jid":"warm-1","jobtype":"noop","queue":"one"}')
            Conn(port).command(b'PUSH {"jid":"warm-2","jobtype":"noop","queue":"bulk"}')
            push_rate = pushes(port, args.jobs, args.connections, "one", 0, "p")
            bulk_rate = pushes(port, args.jobs, args.connections, "bulk", 1000, "b")
            fetch_rate = fetches(port, args.jobs, args.connections, "one")
            p50, p99 = pickup(port, args.samples)
            client_push, client_drain = python_client(port, http, token, args.client_jobs)
        finally:
            process.terminate()
            process.wait(60)
    c = args.connections
    print(f"### Faktory protocol, {args.jobs:,} jobs, {c} connections, SQLite records\n")
    print("| figure | value |\n| --- | --- |")
    print(f"| PUSH, one job per command (jobs/s) | {push_rate:,.0f} |")
    print(f"| PUSHB, 1,000 per command (jobs/s) | {bulk_rate:,.0f} |")
    print(f"| FETCH+ACK, end to end (jobs/s) | {fetch_rate:,.0f} |")
    print(f"| pickup p50, a FETCH waiting (ms) | {p50:.2f} |")
    print(f"| pickup p99, a FETCH waiting (ms) | {p99:.2f} |")
    print(f"| PyPI client: queue(), one connection (jobs/s) | {client_push:,.0f} |")
    print(f"| PyPI client: Worker, 8 threads (jobs/s) | {client_drain:,.0f} |")


if __name__ == "__main__":
    main()
