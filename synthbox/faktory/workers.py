"""The worker processes connected (Faktory clients and HTTP workers): who they are, what
they hold, when they last beat, and what an admin asked of them (quiet: fetch no more;
terminate: stop). A worker silent for STALE_AFTER seconds is forgotten.

Each instance keeps its own workers in memory, so the protocol never waits on the
database for them. With the records (worker_registry), a sync thread writes them to the
workers table (worker_rows.py) at once after a HELLO, a BEAT or a disconnection, and every
second reads back the asks made through any instance: a quiet sent to instance B reaches
the worker connected to A at its next BEAT, and A's FETCHes see it within a second.
Held jobs are not written per job: they go with those writes (and every KEEPALIVE s)."""

from __future__ import annotations

import json
import logging
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

from synthbox.faktory.worker_rows import WorkerRows, stronger
from synthbox.jobs.engine import Engine
from synthbox.threads import start_thread

log = logging.getLogger("synthbox.faktory")

STALE_AFTER = 60.0
STATES = ("quiet", "terminate")
SYNC_EVERY = 1.0  # seconds between reads of the asks made through other instances
KEEPALIVE = 15.0  # seconds between writes of a worker's row when nothing else wrote it
MOST_JOBS_WRITTEN = 1000  # held jids kept in a row (the listing shows a count beside)
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
    instances: set[str] = field(default_factory=set)  # where it is connected (cluster)
    written_at: float = 0.0  # when its row was last written (time.monotonic())

    def shown(self, now: float) -> dict[str, Any]:
        return {"wid": self.wid, "hostname": self.hostname, "pid": self.pid,
                "labels": list(self.labels), "protocol": self.protocol,
                "address": self.address, "jobs": sorted(self.held),
                "instances": sorted(self.instances),
                "startedAt": int(self.started_at * 1000),
                "lastBeat": int(self.last_beat * 1000),
                "secondsSinceBeat": round(max(now - self.last_beat, 0.0), 1),
                "rssKb": self.rss_kb, "state": self.requested or self.current_state or "running"}

    def row(self, instance: str) -> tuple[Any, ...]:
        """Its row in the workers table (worker_rows.COLUMNS)."""
        return (self.wid, instance, self.hostname, self.pid, json.dumps(self.labels),
                self.protocol, self.address, self.started_at, self.last_beat, self.rss_kb,
                self.current_state, self.requested,
                json.dumps(sorted(self.held)[:MOST_JOBS_WRITTEN]))

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Worker:
        (wid, instance, hostname, pid, labels, protocol, address, started_at, last_beat,
         rss_kb, current_state, requested, jobs) = row
        return cls(wid, hostname, pid, json.loads(labels), protocol, address, started_at,
                   last_beat, rss_kb, current_state, requested, held=set(json.loads(jobs)),
                   instances={instance})

    def merge(self, other: Worker) -> None:
        """The same worker as another instance sees it: one entry for both."""
        if other.last_beat > self.last_beat:
            self.last_beat, self.current_state = other.last_beat, other.current_state
            self.rss_kb = other.rss_kb if other.rss_kb is not None else self.rss_kb
        if other.started_at < self.started_at:
            self.started_at = other.started_at
        self.hostname = self.hostname or other.hostname
        self.pid = self.pid or other.pid
        self.labels = self.labels or other.labels
        self.requested = stronger(self.requested, other.requested)
        self.held |= other.held
        self.instances |= other.instances


class WorkerRegistry:
    """This instance's workers; with `rows`, shared with every instance through them."""

    def __init__(self, rows: WorkerRows | None = None) -> None:
        self._lock = threading.Lock()
        self._workers: dict[str, Worker] = {}
        self._rows = rows
        self._instance = "" if rows is None else rows.instance
        self._dirty: set[str] = set()  # wids whose row should be written
        self._gone: set[str] = set()  # wids whose row should be deleted
        self._due = threading.Event()  # wakes the sync thread
        self._syncing = threading.Lock()  # one sync at a time
        self._syncer: threading.Thread | None = None
        self._failing_since: float | None = None  # time.monotonic() of the first failure

    def _new(self, wid: str, hostname: str, pid: int, labels: list[str], protocol: str,
             address: str = "") -> Worker:
        worker = self._workers[wid] = Worker(wid, hostname, pid, labels, protocol, address)
        if self._instance:
            worker.instances.add(self._instance)
        self._gone.discard(wid)
        return worker

    def _changed(self, wid: str) -> None:
        """Its row is to be written now (called holding the lock)."""
        if self._rows is not None:
            self._dirty.add(wid)
            self._wake()

    def _wake(self) -> None:
        """The sync thread, to run now (called holding the lock)."""
        self._due.set()
        if self._syncer is None:
            self._syncer = start_thread("faktory-workers", self._sync_loop)

    def _forget(self, wid: str) -> None:
        """Gone from this instance (called holding the lock)."""
        del self._workers[wid]
        self._dirty.discard(wid)
        if self._rows is not None:
            self._gone.add(wid)
            self._wake()

    def hello(self, wid: str, hostname: str, pid: int, labels: list[str], protocol: str,
              address: str = "", connected: bool = True) -> Worker:
        """A worker connects (again): its record, kept across reconnections. An HTTP
        worker (`connected` False) holds no connection: its beats keep it listed."""
        with self._lock:
            worker = self._workers.get(wid)
            if worker is None:
                worker = self._new(wid, hostname, pid, labels, protocol, address)
            worker.last_beat = time.time()
            worker.connections += connected
            self._changed(wid)
            return worker

    def disconnected(self, wid: str) -> None:
        """A connection closed; a worker with none left and nothing held is gone."""
        with self._lock:
            worker = self._workers.get(wid)
            if worker is not None:
                worker.connections -= 1
                if worker.connections <= 0 and not worker.held:
                    self._forget(wid)
                else:
                    self._changed(wid)

    def beat(self, wid: str, current_state: str = "", rss_kb: int | None = None,
             protocol: str = "faktory") -> str:
        """A heartbeat: what the worker should do now ("", quiet or terminate)."""
        with self._lock:
            worker = self._workers.get(wid)
            if worker is None:  # beats after the record expired: known again
                worker = self._new(wid, "", 0, [], protocol)
            worker.last_beat = time.time()
            worker.current_state = current_state if current_state in STATES else ""
            if rss_kb is not None:
                worker.rss_kb = rss_kb
            self._changed(wid)
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
        """Ask a worker to go quiet or to terminate (told at its next beat), through
        whichever instance it is connected to."""
        if state not in STATES:
            raise ValueError(state)
        with self._lock:
            worker = self._workers.get(wid)
            if worker is not None:
                worker.requested = stronger(worker.requested, state)
        elsewhere = self._rows is not None and self._rows.signal(
            wid, state, time.time() - STALE_AFTER)
        return worker is not None or elsewhere

    def requested(self, wid: str) -> str:
        with self._lock:
            worker = self._workers.get(wid)
            return "" if worker is None else worker.requested

    def known(self, wid: str) -> bool:
        """Whether this instance has the worker (in memory: no database read)."""
        with self._lock:
            return wid in self._workers

    def listing(self) -> list[dict[str, Any]]:
        """Every worker that beat within STALE_AFTER seconds (older ones are dropped), of
        every instance when the registry is shared."""
        now = time.time()
        with self._lock:
            self._drop_stale(now)
            mine = {wid: Worker(**{**vars(w), "held": set(w.held),
                                   "instances": set(w.instances)})
                    for wid, w in self._workers.items()}
        merged = dict(mine)
        if self._rows is not None:
            for row in self._rows.everyone(now - STALE_AFTER):
                other = Worker.from_row(row)
                if other.instances == {self._instance}:
                    if other.wid in mine:
                        continue  # this instance's own row: memory is fresher
                    if other.wid in self._gone:
                        continue  # left here, its row not yet deleted
                if other.wid in merged:
                    merged[other.wid].merge(other)
                else:
                    merged[other.wid] = other
        return [w.shown(now) for w in sorted(merged.values(),
                                             key=lambda w: (w.started_at, w.wid))]

    def _drop_stale(self, now: float) -> None:
        for wid in [w.wid for w in self._workers.values()
                    if now - w.last_beat > STALE_AFTER]:
            self._forget(wid)

    # -- sharing through the records -----------------------------------------------------

    def sync(self) -> None:
        """Write this instance's changed workers (and every worker's row KEEPALIVE seconds
        after its last write), delete those gone, and read the asks made elsewhere."""
        if self._rows is None:
            return
        with self._syncing:
            with self._lock:
                clock, now = time.monotonic(), time.time()
                self._drop_stale(now)
                due = [w for w in self._workers.values()
                       if w.wid in self._dirty or clock - w.written_at >= KEEPALIVE]
                rows = [w.row(self._instance) for w in due]
                gone = sorted(self._gone - set(self._workers))
                self._dirty.clear()
                self._gone.clear()
                local = list(self._workers)
            try:
                self._rows.write(rows, gone)
            except Exception:
                with self._lock:  # written next time
                    self._dirty.update(row[0] for row in rows)
                    self._gone.update(wid for wid in gone if wid not in self._workers)
                raise
            for written in due:
                written.written_at = clock
            seen = self._rows.seen(local)
            with self._lock:
                for wid, (requested, last_beat) in seen.items():
                    worker = self._workers.get(wid)
                    if worker is not None:
                        worker.requested = stronger(worker.requested, requested)
                        worker.last_beat = max(worker.last_beat, last_beat)

    def _sync_loop(self) -> None:
        """Runs while this instance has workers (started again by the next one)."""
        assert self._rows is not None
        last_sweep = time.monotonic()
        while True:
            self._due.wait(SYNC_EVERY)
            self._due.clear()
            try:
                self.sync()
                if time.monotonic() - last_sweep > STALE_AFTER:
                    self._rows.forget_stale(time.time() - STALE_AFTER)
                    last_sweep = time.monotonic()
                if self._failing_since is not None:
                    log.info("the workers table is written again")
                self._failing_since = None
            except Exception as exc:  # the records away: memory still serves this instance
                if self._failing_since is None:
                    log.warning("could not write the workers table (%s: %s); trying every "
                                "%g s", type(exc).__name__, exc, SYNC_EVERY)
                    self._failing_since = time.monotonic()
            with self._lock:
                # rows left undeleted that long are stale: nobody lists them any more
                given_up = self._failing_since is not None and \
                    time.monotonic() - self._failing_since > STALE_AFTER
                if not self._workers and not self._dirty and (not self._gone or given_up):
                    self._syncer = None
                    self._gone.clear()
                    break
        try:
            self._rows.store.db.close()  # this thread's connection
        except Exception:
            pass


def worker_registry(owner: Any) -> WorkerRegistry:
    """The registry of an engine: the listener, the HTTP API and the pages share it, and
    through the records every instance of a cluster shares its workers."""
    found = _BY_OWNER.get(owner)
    if found is None:
        rows = WorkerRows(owner.store, owner.instance_id) if isinstance(owner, Engine) \
            else None
        found = _BY_OWNER[owner] = WorkerRegistry(rows)
    return found
