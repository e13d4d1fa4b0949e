"""`synthbox bench --served`: the appliance as users run it, measured from outside.

Starts `synthbox serve`, or `synthbox start -i N` (cluster mode), in a temporary data
directory on a free port, with Redis keys under a prefix of its own, and measures:

- idle RSS of each instance, once start-up has settled, and again after 3 sign-ins;
- HTTP enqueue, one job per request and 1,000 per bulk request, from 4 keep-alive
  connections, while the queue is paused so nothing else competes;
- drain: the queue resumed, until the stats API counts every job completed;
- pickup latency at 100 jobs/s: jobs added over HTTP one by one, and the time from each
  job's record being written to its being claimed, read from the records afterwards;
- the peak (loaded) RSS of each instance at the end.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from synthbox.bench.common import HTTP_BULK_SIZE as BULK_SIZE
from synthbox.bench.common import HTTP_CLIENTS as CLIENTS
from synthbox.bench.common import LATENCY_RATE, latency_jobs, percentile
from synthbox.paths import self_command

QUEUE = "diagnostics"
SIGN_INS = 3  # an admin or two looking in: argon2id's memory must not stay behind
DRAIN_DEADLINE = 600.0  # seconds: a drain that takes longer is a failure, not a figure


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _rss_mb(pid: int, field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


class BenchServer:
    """A running `synthbox serve` or cluster, and an HTTP client for its API."""

    def __init__(self, data_dir: Path, instances: int, redis_url: str, records_url: str):
        self.data_dir = data_dir
        self.port = _free_port()
        self.instances = instances
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYNTHBOX_")
               and k not in ("REDIS_URL", "DATABASE_URL", "REDIS_SENTINEL_NAME",
                             "REDIS_CLUSTER_MODE")}
        # Nothing of the caller's deployment: no config file (an empty one, and the
        # temporary directory as the working directory), the records named explicitly.
        config = data_dir / "bench.toml"
        config.write_text("")
        env.update({"SYNTHBOX_DATA_DIR": str(data_dir), "SYNTHBOX_PORT": str(self.port),
                    "SYNTHBOX_CONFIG": str(config),
                    "SYNTHBOX_DATABASE_URL": records_url or f"sqlite:///{data_dir}/synthbox.db",
                    "SYNTHBOX_REDIS_PREFIX": f"synthbox-bench-{os.getpid()}",
                    "SYNTHBOX_LOG_LEVEL": "warning"})
        if redis_url:
            env["SYNTHBOX_REDIS_URL"] = redis_url
        self.env = env
        args = ["serve"] if instances == 1 else ["start", "-i", str(instances)]
        self._local = threading.local()  # one keep-alive connection per client thread
        self.log = (data_dir / "bench-serve.log").open("ab")
        self.process = subprocess.Popen(self_command(*args), env=env, cwd=data_dir,
                                        stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        try:
            self._wait_until_serving()
            self.token = (data_dir / "admin-token").read_text().strip()
        except BaseException:
            self.stop()
            raise

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"synthbox exited with {self.process.returncode}; see "
                                   f"{self.data_dir / 'bench-serve.log'}")
            if len(self.instance_pids()) == self.instances:
                try:
                    self.request("GET", "/healthz", auth=False)
                    return
                except (OSError, http.client.HTTPException):
                    pass
            time.sleep(0.1)
        raise RuntimeError("synthbox did not start serving within 60 s")

    def sign_in(self, times: int) -> None:
        """A user made with `synthbox users create`, signed in `times` over the API (each
        sign-in runs argon2id with 19 MiB)."""
        password = "a bench password 1"
        subprocess.run(self_command("users", "create", "bench", "--role", "admin"),
                       input=password + "\n", env=self.env, cwd=self.data_dir, text=True,
                       capture_output=True, check=True, timeout=60)
        for _ in range(times):
            self.request("POST", "/api/v1/auth/login", {"name": "bench", "password": password},
                         auth=False)

    def instance_pids(self) -> list[int]:
        if self.instances == 1:
            return [self.process.pid]
        try:
            children = psutil.Process(self.process.pid).children()
        except psutil.NoSuchProcess:
            return []
        return [child.pid for child in children if "serve" in child.cmdline()]

    def request(self, method: str, path: str, body: Any = None, auth: bool = True) -> Any:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            self._local.connection = connection
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            connection.request(method, path, None if body is None else json.dumps(body),
                               headers)
            response = connection.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException):
            connection.close()
            self._local.connection = None
            raise
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: {response.status} {payload[:200]!r}")
        return json.loads(payload) if payload else None

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:  # the whole group: a cluster's instances too
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.log.close()


def _in_parallel(count: int, work: Any) -> None:
    """Run work(i) for i in range(count) on CLIENTS threads."""
    errors: list[BaseException] = []
    lock = threading.Lock()
    next_index = iter(range(count))

    def client() -> None:
        while True:
            with lock:
                i = next(next_index, None)
            if i is None or errors:
                return
            try:
                work(i)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def _pickups(data_dir: Path, records_url: str, ids: list[int]) -> list[float]:
    marks = ",".join(str(int(i)) for i in ids)
    sql = f"SELECT created_at, started_at FROM job WHERE id IN ({marks})"
    if records_url:
        import psycopg2

        connection = psycopg2.connect(records_url)
        try:
            cursor = connection.cursor()
            cursor.execute(sql)
            rows = cursor.fetchall()
        finally:
            connection.close()
    else:
        import sqlite3

        with sqlite3.connect(data_dir / "synthbox.db") as connection:
            rows = connection.execute(sql).fetchall()
    return [(started - created) * 1000 for created, started in rows if started is not None]


def measure_served(backend: str, jobs: int, instances: int = 1, redis_url: str = "",
                   records_url: str = "") -> dict[str, Any]:
    if backend == "redis":
        redis_url = redis_url or "redis://127.0.0.1:6379/0"
    else:
        redis_url = ""
    with tempfile.TemporaryDirectory(prefix="synthbox-bench-served-") as tmp:
        served = BenchServer(Path(tmp), instances, redis_url, records_url)
        try:
            return _measure(served, backend, jobs, records_url)
        finally:
            served.stop()


def _measure(served: BenchServer, backend: str, jobs: int, records_url: str) -> dict[str, Any]:
    time.sleep(3)  # start-up settles: the first upkeep sweep, the first cron check
    pids = served.instance_pids()
    idle = [_rss_mb(pid, "VmRSS") for pid in pids]
    served.sign_in(SIGN_INS)
    signed_in = [_rss_mb(pid, "VmRSS") for pid in pids]
    served.request("POST", f"/api/v1/admin/queues/{QUEUE}/pause")

    single_jobs = max(1, jobs // 10)
    started = time.perf_counter()
    _in_parallel(single_jobs, lambda i: served.request(
        "POST", f"/api/v1/queues/{QUEUE}/jobs", {"name": "noop"}))
    single_seconds = time.perf_counter() - started

    batches = max(1, jobs // BULK_SIZE)
    batch = {"jobs": [{"name": "noop"}] * min(jobs, BULK_SIZE)}
    started = time.perf_counter()
    _in_parallel(batches, lambda i: served.request(
        "POST", f"/api/v1/queues/{QUEUE}/jobs/bulk", batch))
    bulk_seconds = time.perf_counter() - started
    total = single_jobs + batches * len(batch["jobs"])

    started = time.perf_counter()
    served.request("POST", f"/api/v1/admin/queues/{QUEUE}/resume")
    deadline = time.monotonic() + DRAIN_DEADLINE
    while served.request("GET", f"/api/v1/queues/{QUEUE}/stats")["data"]["completed"] < total:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the drain did not finish within {DRAIN_DEADLINE:.0f} s")
        time.sleep(0.005)
    drain_seconds = time.perf_counter() - started

    ids = []
    samples = latency_jobs(total)
    next_at = time.perf_counter()
    for _ in range(samples):
        next_at += 1 / LATENCY_RATE
        ids.append(int(served.request("POST", f"/api/v1/queues/{QUEUE}/jobs",
                                      {"name": "noop"})["data"]["id"]))
        time.sleep(max(0.0, next_at - time.perf_counter()))
    deadline = time.monotonic() + 30
    while (served.request("GET", f"/api/v1/queues/{QUEUE}/stats")["data"]["completed"]
           < total + samples and time.monotonic() < deadline):
        time.sleep(0.05)
    pickups = _pickups(served.data_dir, records_url, ids)
    loaded = [_rss_mb(pid, "VmHWM") for pid in pids]
    return {
        "mode": "served", "backend": backend,
        "records": "PostgreSQL" if records_url else "SQLite",
        "instances": served.instances, "jobs": total,
        "http_single_per_s": round(single_jobs / single_seconds),
        "http_bulk_per_s": round(batches * len(batch["jobs"]) / bulk_seconds),
        "drain_per_s": round(total / drain_seconds),
        "pickup_p50_ms": round(statistics.median(pickups), 2) if pickups else None,
        "pickup_p99_ms": round(percentile(pickups, 99), 2) if pickups else None,
        "idle_rss_mb": max(idle), "signed_in_rss_mb": max(signed_in),
        "loaded_rss_mb": max(loaded),
        "supervisor_rss_mb": (_rss_mb(served.process.pid, "VmRSS")
                              if served.instances > 1 else None),
    }
