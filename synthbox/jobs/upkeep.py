"""What Huey cannot do, done by every instance (each step is safe to run in several):

- heartbeat: renew the leases of this instance's active jobs, one UPDATE, and say
  this instance is alive;
- stalled jobs (lease ran out): back to waiting, or failed past maxStalledCount;
- lost doorbells: due work that no broker message stands for is announced again;
- retention: finished jobs past their age or count are deleted in bounded batches;
- the queues' own periodic tasks (the orchestration queue's cron) and the process's (alerts).

Each is a Periodic in one table (`Upkeep.tasks`), run by one loop.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable, Sequence

from synthbox import __version__
from synthbox.jobs.periodic import Periodic, PeriodicLoop
from synthbox.jobs.retention import apply_retention
from synthbox.jobs.runner import QueueRunner
from synthbox.jobs.store import JobStore
from synthbox.logs import event
from synthbox.records.counts import fold as fold_counts
from synthbox.records.outage import outage_cause
from synthbox.threads import start_thread

log = logging.getLogger("synthbox.upkeep")

RETENTION_EVERY = 60.0
# A minute after start too: an instance warming up (or each of a cluster's, restarted
# together) does not begin with a burst of deletes; a first pass 5 s after start that
# deleted 19,357 jobs made new jobs' pickups wait up to 12 ms (benchmarks/README.md).
RETENTION_FIRST_AFTER = 60.0
RETENTION_CATCHING_UP = 1.0  # seconds to the next pass while one leaves work behind
DOORBELL_SWEEP_EVERY = 1.0
OUTCOMES_FLUSH_EVERY = 0.5  # while outcomes wait in memory for the records database
DOORBELL_GRACE = 1.0  # due for this long with no doorbell in the broker: ring again
MINUTES_KEPT = 2 * 24 * 60  # per-minute counts, for the dashboard's charts
FORGET_INSTANCE_AFTER = 300.0  # an instance silent this long is gone (its jobs stall back)


class Upkeep:
    def __init__(self, store: JobStore, runners: Iterable[QueueRunner], owner: str,
                 periodic: Iterable[Periodic] = ()):
        """`periodic`: tasks beside the engine's own (the queues', the process's)."""
        self.store = store
        self.runners = list(runners)
        self.owner = owner
        self.stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        shortest = min((r.spec.stalled_interval for r in self.runners), default=30.0)
        self.heartbeat_every = min(max(shortest / 3, 0.2), 10.0)
        self._runner_tasks: dict[int, list[Periodic]] = {}
        self.tasks = [*self._engine_tasks(), *periodic]

    def _tasks_of(self, runner: QueueRunner) -> list[Periodic]:
        queue = runner.spec.name
        tasks = [Periodic(f"stalled:{queue}", runner.spec.stalled_interval,
                          functools.partial(self.recover_stalled, runner)),
                 Periodic(f"republish:{queue}", DOORBELL_SWEEP_EVERY,
                          functools.partial(self.republish_lost, runner)),
                 Periodic(f"outcomes:{queue}", OUTCOMES_FLUSH_EVERY,
                          functools.partial(self.write_kept_outcomes, runner))]
        self._runner_tasks[id(runner)] = tasks
        return tasks

    def add_runner(self, runner: QueueRunner, periodic: Iterable[Periodic] = ()) -> None:
        """A queue added while this instance runs: its leases, sweeps and retention too,
        and its own periodic tasks (removed with it)."""
        tasks = self._tasks_of(runner)
        tasks.extend(periodic)
        self.runners = [*self.runners, runner]
        self.tasks.extend(tasks)

    def remove_runner(self, runner: QueueRunner) -> None:
        self.runners = [r for r in self.runners if r is not runner]
        for task in self._runner_tasks.pop(id(runner), []):
            if task in self.tasks:
                self.tasks.remove(task)

    def _engine_tasks(self) -> list[Periodic]:
        tasks = [task for runner in self.runners for task in self._tasks_of(runner)]
        return [*tasks,
                Periodic("fold-counts", DOORBELL_SWEEP_EVERY, self.fold_counts),
                Periodic("retention", RETENTION_EVERY, self.retention_pass,
                         first_after=RETENTION_FIRST_AFTER),
                Periodic("forget-instances", RETENTION_EVERY, self.forget_silent_instances),
                Periodic("forget-minutes", RETENTION_EVERY,
                         lambda: self.store.tallies.forget_minutes(
                             int(time.time() // 60) - MINUTES_KEPT))]

    def fold_counts(self) -> None:
        """PostgreSQL: the job counts' and the tallies' deltas into their totals."""
        fold_counts(self.store.db)
        self.store.tallies.fold()

    def start(self) -> None:
        for target, name in ((self._heartbeat_loop, "heartbeat"),
                             (PeriodicLoop(self.tasks, self.stopped).run, "upkeep")):
            self._threads.append(start_thread(name, target))

    def stop(self) -> None:
        self.stopped.set()
        for thread in self._threads:
            thread.join(5)
        for runner in self.runners:  # before the engine hands this instance's jobs back
            try:
                self.write_kept_outcomes(runner)
            except Exception as exc:
                log.error("queue %s: %d job outcome(s) kept in memory could not be written "
                          "(%s); those jobs will run again", runner.spec.name,
                          runner.unrecorded(), exc)

    # -- heartbeat ----------------------------------------------------------------------

    def _heartbeat_loop(self) -> None:
        started = time.time()
        while not self.stopped.is_set():
            try:
                self.heartbeat(started)
            except Exception as exc:
                if outage_cause(exc) is None:  # an outage is logged once, by the database
                    log.exception("heartbeat failed")
            self.stopped.wait(self.heartbeat_every)

    def heartbeat(self, started: float) -> None:
        leases: dict[str, tuple[float, Sequence[int]]] = {}
        done: dict[str, int] = {}
        for r in self.runners:  # a queue being replaced has two runners for a moment
            interval, held = leases.get(r.spec.name, (r.spec.stalled_interval, []))
            leases[r.spec.name] = (interval, [*held, *r.held_ids()])
            done[r.spec.name] = done.get(r.spec.name, 0) + r.jobs_done
        self.store.renew_leases(self.owner, leases)
        now = time.time()
        queues = json.dumps(done)
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
        self.store.execute("DELETE FROM instance WHERE last_seen<?",
                           (time.time() - FORGET_INSTANCE_AFTER,))

    # -- maintenance --------------------------------------------------------------------

    def retention_pass(self) -> float | None:
        """Retention over every queue; sooner again when a pass left work behind."""
        behind = False
        for runner in self.runners:
            try:
                behind = self.apply_retention(runner) or behind
            except Exception as exc:  # one queue's failure does not hold up the others'
                if outage_cause(exc) is not None:
                    raise  # the records are away: for every queue alike
                log.exception("retention of queue %s failed", runner.spec.name)
        return RETENTION_CATCHING_UP if behind else None

    @staticmethod
    def write_kept_outcomes(runner: QueueRunner) -> None:
        if runner.unrecorded():
            runner.flush_unrecorded()

    def recover_stalled(self, runner: QueueRunner) -> None:
        spec = runner.spec
        # this instance's own outcomes first: written, their jobs need not run again
        self.write_kept_outcomes(runner)
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
        """Delete what the queue's retention says (synthbox.jobs.retention). True when a
        pass stopped at its cap with more left to delete."""
        return apply_retention(self.store, runner.spec, self.stopped)
