"""The worker processes connected to this instance (Faktory clients and HTTP workers): who
they are, what they hold, when they last beat, and what an admin asked of them (quiet:
fetch no more; terminate: stop). A worker silent for STALE_AFTER seconds is forgotten."""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

STALE_AFTER = 60.0
STATES = ("quiet", "terminate")
_BY_OWNER: weakref.WeakKeyDictionary[Any, WorkerRegistry] = weakref.WeakKeyDictionary()


@dataclass
class Worker:
    wid: str
    hostname: str
    pid: int
    labels: list[str]
    protocol: str  # "faktory" or "http"
    address: str = ""
    started_at: float = field(default_factory=time.time)
    last_beat: float = field(default_factory=time.time)
    rss_kb: int | None = None
    current_state: str = ""  # what the worker says it is doing
    requested: str = ""  # "", quiet or terminate: what an admin asked
    connections: int = 0
    held: set[str] = field(default_factory=set)

    def shown(self, now: float) -> dict[str, Any]:
        return {"wid": self.wid, "hostname": self.hostname, "pid": self.pid,
                "labels": list(self.labels), "protocol": self.protocol,
                "address": self.address, "jobs": sorted(self.held),
                "startedAt": int(self.started_at * 1000),
                "lastBeat": int(self.last_beat * 1000),
                "secondsSinceBeat": round(max(now - self.last_beat, 0.0), 1),
                "rssKb": self.rss_kb, "state": self.requested or self.current_state or "running"}


class WorkerRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._workers: dict[str, Worker] = {}

    def hello(self, wid: str, hostname: str, pid: int, labels: list[str], protocol: str,
              address: str = "", connected: bool = True) -> Worker:
        """A worker connects (again): its record, kept across reconnections. An HTTP
        worker (`connected` False) holds no connection: its beats keep it listed."""
        with self._lock:
            worker = self._workers.get(wid)
            if worker is None:
                worker = self._workers[wid] = Worker(wid, hostname, pid, labels, protocol,
                                                     address)
            worker.last_beat = time.time()
            worker.connections += connected
            return worker

    def disconnected(self, wid: str) -> None:
        """A connection closed; a worker with none left and nothing held is gone."""
        with self._lock:
            worker = self._workers.get(wid)
            if worker is not None:
                worker.connections -= 1
                if worker.connections <= 0 and not worker.held:
                    del self._workers[wid]

    def beat(self, wid: str, current_state: str = "", rss_kb: int | None = None,
             protocol: str = "faktory") -> str:
        """A heartbeat: what the worker should do now ("", quiet or terminate)."""
        with self._lock:
            worker = self._workers.get(wid)
            if worker is None:  # beats after the record expired: known again
                worker = self._workers[wid] = Worker(wid, "", 0, [], protocol)
            worker.last_beat = time.time()
            worker.current_state = current_state if current_state in STATES else ""
            if rss_kb is not None:
                worker.rss_kb = rss_kb
            return worker.requested

    def hold(self, wid: str | None, jid: str) -> None:
        if wid is None:
            return
        with self._lock:
            worker = self._workers.get(wid)
            if worker is not None:
                worker.held.add(jid)

    def release(self, jid: str) -> None:
        with self._lock:
            for worker in self._workers.values():
                worker.held.discard(jid)

    def signal(self, wid: str, state: str) -> bool:
        """Ask a worker to go quiet or to terminate (told at its next beat)."""
        if state not in STATES:
            raise ValueError(state)
        with self._lock:
            worker = self._workers.get(wid)
            if worker is None:
                return False
            if worker.requested != "terminate":
                worker.requested = state
            return True

    def requested(self, wid: str) -> str:
        with self._lock:
            worker = self._workers.get(wid)
            return "" if worker is None else worker.requested

    def listing(self) -> list[dict[str, Any]]:
        """Every worker that beat within STALE_AFTER seconds (older ones are dropped)."""
        now = time.time()
        with self._lock:
            for wid in [w.wid for w in self._workers.values()
                        if now - w.last_beat > STALE_AFTER]:
                del self._workers[wid]
            return [w.shown(now) for w in sorted(self._workers.values(),
                                                 key=lambda w: w.started_at)]


def worker_registry(owner: Any) -> WorkerRegistry:
    """The registry of an engine: the listener, the HTTP API and the pages share it."""
    found = _BY_OWNER.get(owner)
    if found is None:
        found = _BY_OWNER[owner] = WorkerRegistry()
    return found
