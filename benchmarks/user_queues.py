"""Queues of your own against the diagnostics queue, in the same run: how fast each handler
kind drains, and how fast jobs are added to a user queue, each as a ratio to the
diagnostics no-op drain (and adds to diagnostics' adds). Medians of --rounds rounds,
alternating, each figure on a fresh engine (SQLite records and transport, the default).

- diagnostics: `noop`, 8 workers (what `synthbox bench` drains);
- http: a POST per job to a local keep-alive receiver (asyncio, its own process, answers
  200 with a JSON body at once), 16 workers;
- python: a no-op function in the worker thread, 8 workers;
- command: `true`, 8 workers (fewer jobs: a process per job);
- adds: one `add()` at a time, and `add_bulk()` of 1,000, to diagnostics and to a
  user queue (python kind).

Usage: python benchmarks/user_queues.py [--jobs 20000] [--command-jobs 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from synthbox.app import build_engine
from synthbox.config import load_settings

RECEIVER = r"""
import asyncio
REPLY = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n"
         b'{"ok":true}')

async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            writer.write(REPLY)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

asyncio.run(main())
"""

NOOP_MODULE = "def noop(data):\n    return None\n"


def engine_with(queues: dict[str, Any], tmp: Path) -> Any:
    settings = load_settings({"data_dir": str(tmp / "data")}, env={})
    return build_engine(dataclasses.replace(settings, queues=queues))


def drain_rate(queues: dict[str, Any], queue: str, job: str, jobs: int, tmp: Path) -> float:
    """Jobs/s to empty a queue filled with `jobs` jobs (workers started after the fill)."""
    engine = engine_with(queues, tmp)
    try:
        service = engine.service(queue)
        for start in range(0, jobs, 1000):
            service.add_bulk([{"name": job}] * min(1000, jobs - start))
        started = time.perf_counter()
        engine.start_workers([queue])
        runner = engine.queues[queue].runner
        deadline = time.monotonic() + 600
        while runner.jobs_done < jobs and time.monotonic() < deadline:
            time.sleep(0.002)
        seconds = time.perf_counter() - started
        # (retention may already have deleted completed jobs: count what did not complete)
        unfinished = service.store.execute(
            "SELECT status, failed_reason, COUNT(*) FROM job WHERE queue=? AND "
            "status<>'completed' GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 3", (queue,)).fetchall()
        if unfinished or runner.jobs_done < jobs:
            raise SystemExit(f"{queue}: not every job completed: {unfinished}")
        return jobs / seconds
    finally:
        engine.stop(timeout=10)
        engine.close()


def add_rates(queues: dict[str, Any], queue: str, job: str, jobs: int,
              tmp: Path) -> tuple[float, float]:
    """Jobs/s adding one at a time, then with add_bulk() of 1,000 (no workers)."""
    engine = engine_with(queues, tmp)
    try:
        service = engine.service(queue)
        started = time.perf_counter()
        for _ in range(jobs):
            service.add(job)
        single = jobs / (time.perf_counter() - started)
        started = time.perf_counter()
        for start in range(0, jobs, 1000):
            service.add_bulk([{"name": job}] * min(1000, jobs - start))
        return single, jobs / (time.perf_counter() - started)
    finally:
        engine.close()


def one_round(args: argparse.Namespace, receiver_url: str, code: Path) -> dict[str, float]:
    user = {"mine": {"handler": "python", "function": "benchnoop:noop",
                     "python_path": str(code), "concurrency": 8, "attempts": 1}}
    diagnostics = {"diagnostics": {"concurrency": 8}}
    figures: dict[str, float] = {}
    plans = [
        ("diagnostics", diagnostics, "diagnostics", "noop", args.jobs),
        ("http", {"hooks": {"handler": "http", "url": receiver_url, "allow_loopback": True,
                            "concurrency": 16, "attempts": 1}}, "hooks", "post", args.jobs),
        ("python", user, "mine", "noop", args.jobs),
        ("command", {"truth": {"handler": "command", "command": [shutil.which("true")],
                               "concurrency": 8, "attempts": 1}}, "truth", "run",
         args.command_jobs),
    ]
    for label, queues, queue, job, count in plans:
        with tempfile.TemporaryDirectory(prefix="synthbox-uq-") as tmp:
            figures[label] = drain_rate(queues, queue, job, count, Path(tmp))
    for label, queues, queue, job in (("add diagnostics", diagnostics, "diagnostics", "noop"),
                                      ("add user", user, "mine", "noop")):
        with tempfile.TemporaryDirectory(prefix="synthbox-uq-") as tmp:
            single, bulk = add_rates(queues, queue, job, args.add_jobs, Path(tmp))
        figures[f"{label} single"], figures[f"{label} bulk"] = single, bulk
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--command-jobs", type=int, default=2000)
    parser.add_argument("--add-jobs", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("huey").setLevel(logging.ERROR)
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE,
                                text=True)
    try:
        assert receiver.stdout is not None
        url = f"http://127.0.0.1:{receiver.stdout.readline().strip()}/jobs"
        with tempfile.TemporaryDirectory(prefix="synthbox-uq-code-") as code:
            (Path(code) / "benchnoop.py").write_text(NOOP_MODULE)
            rounds = [one_round(args, url, Path(code)) for _ in range(args.rounds)]
    finally:
        receiver.terminate()
        receiver.wait(10)
    median = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    print_table(args, median)


def print_table(args: argparse.Namespace, median: dict[str, float]) -> None:
    drain = median["diagnostics"]
    print(f"### user queues: median of {args.rounds} rounds "
          f"({args.jobs:,} jobs; command {args.command_jobs:,}; adds {args.add_jobs:,})")
    print()
    print("| figure | jobs/s | vs diagnostics no-op drain | vs the same on diagnostics |")
    print("| --- | --- | --- | --- |")
    rows = [("drain: diagnostics noop, 8 workers", "diagnostics", None),
            ("drain: http to a keep-alive receiver, 16 workers", "http", None),
            ("drain: python no-op in a thread, 8 workers", "python", None),
            ("drain: command `true`, 8 workers", "command", None),
            ("add one at a time: diagnostics", "add diagnostics single", None),
            ("add one at a time: user queue", "add user single", "add diagnostics single"),
            ("add_bulk() of 1,000: diagnostics", "add diagnostics bulk", None),
            ("add_bulk() of 1,000: user queue", "add user bulk", "add diagnostics bulk")]
    for label, key, against in rows:
        same = f"{median[key] / median[against]:.2f}" if against else ""
        print(f"| {label} | {median[key]:,.0f} | {median[key] / drain:.2f} | {same} |")


if __name__ == "__main__":
    main()
