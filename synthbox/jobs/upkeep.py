"""What Huey cannot do, done by every instance (each step is safe to run in several):

- heartbeat: renew the leases of this instance's active jobs, one UPDATE, and say
  this instance is alive;
- stalled jobs (lease ran out): back to waiting, or failed past maxStalledCount;
- lost doorbells: due work that no broker message stands for is announced again;
- retention: finished jobs past their age or count are deleted in bounded batches;
- chores of the queues, about once a second (the orchestration queue's cron).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable

from synthbox import __version__
from synthbox.jobs.runner import QueueRunner
from synthbox.jobs.store import JobStore
from synthbox.logs import event
from synthbox.records.counts import fold as fold_counts
from synthbox.records.models import COMPLETED, FAILED

log = logging.getLogger("synthbox.upkeep")

RETENTION_EVERY = 60.0
RETENTION_CATCHING_UP = 1.0  # seconds to the next pass while one leaves work behind
# Each batch holds SQLite's one write lock: 1,000 rows held it 5-17 ms, and a producer
# adding a job waited that long. 200 rows take 1-2 ms, with a pause after each.
RETENTION_BATCH = 200
RETENTION_BATCHES_PER_PASS = 100
RETENTION_PAUSE = 0.002
DOORBELL_SWEEP_EVERY = 1.0
DOORBELL_GRACE = 1.0  # due for this long with no doorbell in the broker: ring again
MINUTES_KEPT = 2 * 24 * 60  # per-minute counts, for the dashboard's charts
FORGET_INSTANCE_AFTER = 300.0  # an instance silent this long is gone (its jobs stall back)


class Upkeep:
    def __init__(self, store: JobStore, runners: Iterable[QueueRunner], owner: str,
                 chores: Iterable[Callable[[], None]] = ()):
        self.store = store
        self.runners = list(runners)
        self.chores = list(chores)
        self.owner = owner
        self.stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        shortest = min((r.spec.stalled_interval for r in self.runners), default=30.0)
        self.heartbeat_every = min(max(shortest / 3, 0.2), 10.0)

    def start(self) -> None:
        for target, name in ((self._heartbeat_loop, "heartbeat"),
                             (self._maintenance_loop, "maintenance")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self.stopped.set()
        for thread in self._threads:
            thread.join(5)

    # -- heartbeat ----------------------------------------------------------------------

    def _heartbeat_loop(self) -> None:
        started = time.time()
        while not self.stopped.is_set():
            try:
                self.heartbeat(started)
            except Exception:
                log.exception("heartbeat failed")
            self.stopped.wait(self.heartbeat_every)

    def heartbeat(self, started: float) -> None:
        self.store.renew_leases(self.owner, {
            r.spec.name: (r.spec.stalled_interval, r.held_ids()) for r in self.runners})
        now = time.time()
        queues = json.dumps({r.spec.name: r.jobs_done for r in self.runners})
        with self.store.db.atomic():
            if not self.store.execute("UPDATE instance SET last_seen=?, queues=? WHERE id=?",
                                      (now, queues, self.owner)).rowcount:
                self.store.execute(
                    "INSERT INTO instance (id, host, pid, version, queues, started_at, last_seen) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (self.owner, socket.gethostname(), os.getpid(), __version__, queues,
                     started, now))

    def forget_instance(self) -> None:
        self.store.execute("DELETE FROM instance WHERE id=?", (self.owner,))

    def forget_silent_instances(self) -> None:
        try:
            self.store.execute("DELETE FROM instance WHERE last_seen<?",
                               (time.time() - FORGET_INSTANCE_AFTER,))
        except Exception:
            log.exception("could not prune instance rows")

    # -- maintenance --------------------------------------------------------------------

    def _maintenance_loop(self) -> None:
        next_stalled = {r.spec.name: time.monotonic() for r in self.runners}
        next_sweep = time.monotonic()
        next_retention = time.monotonic() + 5.0
        while not self.stopped.wait(0.25):
            now = time.monotonic()
            behind = False
            for runner in self.runners:
                try:
                    if now >= next_stalled[runner.spec.name]:
                        next_stalled[runner.spec.name] = now + runner.spec.stalled_interval
                        self.recover_stalled(runner)
                    if now >= next_sweep:
                        self.republish_lost(runner)
                    if now >= next_retention:
                        behind = self.apply_retention(runner) or behind
                except Exception:
                    log.exception("upkeep of queue %s failed", runner.spec.name)
            if now >= next_sweep:
                next_sweep = now + DOORBELL_SWEEP_EVERY
                try:
                    fold_counts(self.store.db)
                except Exception:
                    log.exception("folding job counts failed")
                for chore in self.chores:
                    try:
                        chore()
                    except Exception:
                        log.exception("queue chore failed")
            if now >= next_retention:
                next_retention = now + (RETENTION_CATCHING_UP if behind else RETENTION_EVERY)
                self.forget_silent_instances()
                try:
                    self.store.forget_minutes(int(time.time() // 60) - MINUTES_KEPT)
                except Exception:
                    log.exception("could not fold old per-minute counts")

    def recover_stalled(self, runner: QueueRunner) -> None:
        spec = runner.spec
        requeued, failed = self.store.recover_stalled(spec.name, spec.max_stalled_count)
        for job_id in requeued:
            log.warning("Job stalled: %s job %s moved back to waiting", spec.name, job_id,
                        extra=event("job stalled", queue=spec.name, jobId=str(job_id)))
        for job_id in failed:
            log.warning("Job stalled: %s job %s failed (stalled more than allowable limit)",
                        spec.name, job_id, extra=event("job stalled", queue=spec.name,
                                                       jobId=str(job_id), final=True))
        if requeued:
            runner.doorbell.ring()

    def republish_lost(self, runner: QueueRunner) -> None:
        """Due jobs with no doorbell left in the broker (Redis flushed, restarted, or down at
        enqueue time) are announced again. Duplicates cost one empty claim."""
        if not self.store.has_due_work(runner.spec.name, time.time() - DOORBELL_GRACE):
            return
        bell = runner.doorbell
        try:
            in_broker = bell.pending_in_broker()
        except Exception as exc:
            bell.mark_reachable(False, exc)
            in_broker = 0
        if in_broker == 0:
            if not bell.publish():
                bell.local.set()  # the broker is down: local workers drain from the records

    def apply_retention(self, runner: QueueRunner) -> bool:
        """Delete what the queue's retention says, in small batches. True when a pass
        stopped at its cap with more left to delete."""
        spec = runner.spec
        now = time.time()
        passes = (
            (COMPLETED, now - spec.keep_completed_age, 0),
            (COMPLETED, None, spec.keep_completed_count),
            (FAILED, now - spec.keep_failed_age, 0),
        )
        removed, behind = 0, False
        for status, older_than, keep in passes:
            for _ in range(RETENTION_BATCHES_PER_PASS):
                count = self.store.delete_finished(spec.name, status, older_than, keep,
                                                   RETENTION_BATCH)
                removed += count
                if count < RETENTION_BATCH:
                    break
                if self.stopped.wait(RETENTION_PAUSE):  # let waiting writers in
                    return False
            else:  # the pass's last batch was full: there may be more
                behind = True
        if removed:
            log.info("retention: removed %d finished %s jobs", removed, spec.name)
        return behind
