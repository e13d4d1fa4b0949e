"""Jobs added through the API while a fault is on, and what became of each.

`Load(server).start()` adds jobs in a thread (one request at a time) until `stop()`;
`check()` asserts what every fault test asserts: each answer a 201 or a 503 that says
why and when to retry (never another 5xx), and then `settled()` waits for every accepted
job to reach a final state. `report()` gives the figures for the README's table."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from typing import Any

from tests.conftest import Records, Serve, wait_for

FINAL = ("completed", "failed")
FIGURES: dict[str, dict[str, Any]] = {}  # scenario -> figures, printed by conftest


def add_job(server: Serve, body: dict[str, Any], queue: str = "diagnostics",
            timeout: float = 15, path: str | None = None) -> tuple[int, Any, dict[str, str]]:
    """POST one job (or, with `path`, one anything): (status, JSON body, headers)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.port}{path or f'/api/v1/queues/{queue}/jobs'}",
        data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {server.token}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as error:
        payload = error.read()
        try:
            reply = json.loads(payload)
        except ValueError:
            reply = payload.decode(errors="replace")
        return error.code, reply, dict(error.headers)


def page(server: Serve, path: str = "/") -> str:
    """A page as a browser gets it (redirects followed), whatever its status."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=10) as r:
            return str(r.read().decode())
    except urllib.error.HTTPError as error:
        return str(error.read().decode())


def metric(server: Serve, name: str) -> float | None:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return None


class Load:
    def __init__(self, server: Serve, job: dict[str, Any] | None = None, pause: float = 0.02,
                 servers: list[Serve] | None = None, path: str | None = None,
                 limit: int | None = None):
        self.servers = servers or [server]
        self.path = path  # another endpoint that adds (emails)
        self.limit = limit  # stop after this many accepted
        self.job = job or {"name": "noop"}
        self.pause = pause
        self.accepted: list[int] = []
        self.statuses: Counter[int] = Counter()
        self.bad: list[Any] = []  # answers a fault must never give
        self.messages: Counter[str] = Counter()
        self.successes: list[float] = []  # time.monotonic() of each 201
        self.refusals: list[float] = []  # and of each 503
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Load:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set() and (self.limit is None
                                           or len(self.accepted) < self.limit):
            server = self.servers[i % len(self.servers)]
            i += 1
            try:
                body = ({**self.job, "subject": f"{self.job['subject']} {i}"} if self.path
                        else {**self.job, "data": {**self.job.get("data", {}), "i": i}})
                status, reply, headers = add_job(server, body, path=self.path)
            except OSError as exc:  # a refused connection (the process was killed)
                self.statuses[0] += 1
                self.messages[f"connection: {type(exc).__name__}"] += 1
                time.sleep(0.1)
                continue
            self.statuses[status] += 1
            if status == 201:
                self.accepted.append(int(reply["data"]["id"]))
                self.successes.append(time.monotonic())
            elif (status == 503 and isinstance(reply, dict) and reply["success"] is False
                  and reply["error"]["message"] and headers.get("Retry-After")):
                self.refusals.append(time.monotonic())
                self.messages[reply["error"]["message"][:100]] += 1
            else:
                self.bad.append((status, reply))
            time.sleep(self.pause)

    def stop(self) -> Load:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)
        return self

    def recovered_after(self, since: float) -> float:
        """Seconds from `since` to the first accepted job after it."""
        later = [t for t in self.successes if t >= since]
        assert later, f"no job was accepted after the fault ended: {self.statuses}"
        return later[0] - since

    def check(self, refusals_expected: bool = False) -> None:
        assert not self.bad, f"answers other than 201 or a 503 that says why: {self.bad[:3]}"
        assert self.accepted, "the load added no job at all"
        if refusals_expected:
            assert self.statuses[503], f"the fault was never felt: {self.statuses}"

    def settled(self, records: Records, timeout: float = 90) -> dict[str, int]:
        """Wait until every accepted job is in a final state; the jobs' states."""
        ids = set(self.accepted)

        def final() -> bool:
            rows = records.query("SELECT id, status FROM job")
            states = {row[0]: row[1] for row in rows}
            missing = ids - set(states)
            assert not missing, f"accepted jobs missing from the records: {sorted(missing)[:5]}"
            return all(states[i] in FINAL for i in ids)

        wait_for(final, timeout, interval=0.25,
                 message=f"every accepted job final, have {records.counts()}")
        return records.counts()

    def report(self, scenario: str, records: Records, recovery: float | None,
               **more: Any) -> dict[str, Any]:
        """Jobs accepted / completed / run twice (a stall is a second run), refusals, and
        the recovery time; kept for the README's table."""
        ran_again = records.query("SELECT COALESCE(SUM(stalled_count), 0) FROM job")[0][0]
        completed = records.query("SELECT COUNT(*) FROM job WHERE status='completed'")[0][0]
        figures = {"accepted": len(self.accepted), "completed": completed,
                   "runTwice": int(ran_again), "refused503": self.statuses[503],
                   "recoverySeconds": None if recovery is None else round(recovery, 2), **more}
        FIGURES[scenario] = figures
        print(f"\nFAULT {scenario}: {json.dumps(figures)}")
        return figures
