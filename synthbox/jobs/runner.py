"""Running jobs: claim a batch, run each with its timeout, record the outcomes together.

A doorbell (see `consumer.py`) makes a worker drain its queue from the records
database until nothing is due, so one doorbell may stand for thousands of jobs and
a duplicate costs one empty claim.
"""

from __future__ import annotations

import ctypes
import json
import logging
import queue as stdqueue
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from synthbox.jobs.context import JobContext
from synthbox.jobs.doorbell import Doorbell
from synthbox.jobs.errors import TIMEOUTS_HELD, JobTimeout, RetryLater, UnrecoverableError
from synthbox.jobs.ratelimit import RedisRateLimiter
from synthbox.jobs.rows import ClaimedJob, Failure
from synthbox.jobs.spec import QueueSpec
from synthbox.jobs.store import JobStore
from synthbox.logs import event
from synthbox.records.outage import outage_cause
from synthbox.threads import start_thread

log = logging.getLogger("synthbox.worker")

# A claim's largest batch, reached only by jobs that take under BATCH_SECONDS / MAX_BATCH
# each. With PostgreSQL records a statement's own cost (planning, commit, trigger, round
# trip) is spread over its batch: draining 20,000 no-op jobs with 8 workers, batches of 500
# took about 55 us of server CPU a job against 70 at 100 (benchmarks/README.md, issue 22).
# SQLite's statements grow with the batch (an IN list, a VALUES row a job): 2% more
# instructions a job at 500, so it stays at 100.
MAX_BATCH = {"postgres": 500, "sqlite": 100}
# Outcomes held in memory while the records database is away, per queue. Only jobs claimed
# before it went can finish meanwhile (claims fail), so this is concurrency x MAX_BATCH at
# most (for jobs that short); past it an outcome is not kept, says so, and its job comes
# back through its lease.
MAX_UNRECORDED = 10_000
BATCH_SECONDS = 0.02  # how long one claimed batch should take to run, at most


class _Outcome:
    __slots__ = ("done", "value", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


def job_fields(job: ClaimedJob, **more: Any) -> dict[str, Any]:
    """What a log line about a job carries."""
    return {"queue": job.queue, "jobId": str(job.id), "attempt": job.attempts_made,
            "priority": job.priority, **more}


class TimedSlot:
    """A helper thread that runs one job at a time so the worker can stop waiting for it.

    A job past its timeout is abandoned here: told to stop (its context is cancelled
    and a JobTimeout is raised in its thread at the next Python instruction) while the
    worker slot moves on with a fresh helper.
    """

    def __init__(self) -> None:
        self._inbox: stdqueue.SimpleQueue[Any] = stdqueue.SimpleQueue()
        self._thread = start_thread("job-runner", self._serve)

    def _serve(self) -> None:
        try:
            while True:
                item = self._inbox.get()
                if item is None:
                    return
                call, outcome = item
                try:
                    outcome.value = call()
                except BaseException as exc:  # noqa: B036 - reported to the waiting worker
                    outcome.error = exc
                outcome.done.set()
        except JobTimeout:
            return  # the stop request reached a job that had just finished

    def run(self, call: Callable[[], Any], timeout: float) -> _Outcome | None:
        """The outcome, or None when `timeout` passed first (this slot is then spent)."""
        outcome = _Outcome()
        self._inbox.put((call, outcome))
        if outcome.done.wait(timeout):
            return outcome
        ident = self._thread.ident
        if ident is not None:
            with TIMEOUTS_HELD:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(ident), ctypes.py_object(JobTimeout))
        self._inbox.put(None)
        return None


class QueueRunner:
    """Claims and runs the jobs of one queue in this instance."""

    def __init__(self, spec: QueueSpec, store: JobStore, doorbell: Doorbell, owner: str,
                 limiter: RedisRateLimiter | None):
        self.spec = spec
        self.store = store
        self.doorbell = doorbell
        self.owner = owner
        self.limiter = limiter
        self.stopping = threading.Event()
        self.average_seconds: float | None = None
        self.jobs_done = 0
        self._max_batch = MAX_BATCH["postgres" if store.postgres else "sqlite"]
        self._busy = 0
        self._busy_lock = threading.Lock()
        self._held: set[int] = set()  # claimed by this instance and not yet recorded
        self._slots = threading.local()
        # outcomes the records database could not take yet: (completed, failures) batches
        self._unrecorded: list[tuple[list[Any], list[Failure]]] = []
        self._kept: set[int] = set()  # their job ids, whose leases the heartbeat renews

    def held_ids(self) -> list[int]:
        """The jobs whose leases the heartbeat renews."""
        with self._busy_lock:
            return list(self._held | self._kept)

    def unrecorded(self) -> int:
        """How many job outcomes wait in memory for the records database."""
        with self._busy_lock:
            return len(self._kept)

    # -- claiming -----------------------------------------------------------------------

    def batch_size(self) -> int:
        """Short jobs are claimed in batches; long ones one at a time, so `active` stays true."""
        if self.average_seconds is None:
            size = 1
        else:
            size = max(1, min(self._max_batch,
                              int(BATCH_SECONDS / max(self.average_seconds, 1e-6))))
        if self.spec.rate_limit_max:
            size = min(size, self.spec.rate_limit_max)
        return size

    def claim(self, limit: int) -> tuple[list[ClaimedJob], float]:
        """Due jobs for this worker, and how long to wait when the rate limit says no."""
        spec = self.spec
        lease = spec.stalled_interval
        if not spec.rate_limit_max:
            return self.store.claim(spec.name, limit, self.owner, lease), 0.0
        if self.limiter is not None and self.doorbell.healthy:
            now = time.time()
            try:
                granted, tag, wait = self.limiter.acquire(
                    spec.name, limit, spec.rate_limit_max, spec.rate_limit_duration, now)
            except Exception as exc:  # Redis went away: the records database decides
                log.debug("rate limiter unreachable: %s", exc)
            else:
                if not granted:
                    return [], wait
                jobs = self.store.claim(spec.name, granted, self.owner, lease, now=now)
                try:
                    self.limiter.release(spec.name, tag, granted, len(jobs))
                except Exception as exc:  # unused slots then expire with the window
                    log.debug("rate limiter unreachable: %s", exc)
                return jobs, 0.0
        return self.store.claim_limited(spec.name, limit, self.owner, lease,
                                        spec.rate_limit_max, spec.rate_limit_duration)

    def draining(self) -> int:
        """How many workers are in a drain now (0: every one waits for a doorbell)."""
        return self._busy

    def drain(self) -> int:
        """Run due jobs until none is left (or this instance stops). Returns how many ran."""
        with self._busy_lock:
            self._busy += 1
        ran = 0
        try:
            while not self.stopping.is_set():
                limit = self.batch_size()
                asked = time.monotonic()
                try:
                    jobs, wait = self.claim(limit)
                except Exception as exc:
                    if outage_cause(exc) is None:  # an outage is logged once, by the database
                        log.exception("queue %s: claim failed", self.spec.name,
                                      extra=event("worker error", queue=self.spec.name))
                    return ran
                if not jobs:
                    if wait:  # the rate limit said no: try again when it will say yes
                        self.doorbell.waker.call_at(time.time() + wait, self.doorbell.ring)
                        self._count_rate_limited()
                    else:  # nothing due: the rings before this claim are answered
                        self.doorbell.answered(asked)
                    return ran
                with self._busy_lock:
                    self._held.update(job.id for job in jobs)
                if len(jobs) == limit and self._busy < self.spec.concurrency:
                    self.doorbell.ring()  # more may be due: wake an idle worker to help
                try:
                    self.run_batch(jobs)
                except Exception:
                    # The records database failed us. No longer held, these jobs' leases
                    # run out and upkeep hands them back as stalled. Nothing is lost.
                    log.exception("queue %s: could not record a batch", self.spec.name,
                                  extra=event("worker error", queue=self.spec.name))
                    return ran
                finally:
                    with self._busy_lock:
                        self._held.difference_update(job.id for job in jobs)
                ran += len(jobs)
        finally:
            with self._busy_lock:
                self._busy -= 1
        return ran

    # -- running ------------------------------------------------------------------------

    def run_batch(self, jobs: list[ClaimedJob]) -> None:
        completed: list[tuple[ClaimedJob, str | None, float]] = []
        failures: list[Failure] = []
        for index, job in enumerate(jobs):
            if self.stopping.is_set():
                self.store.release(self.owner, [j.id for j in jobs[index:]])
                break
            started = time.perf_counter()
            result, failure = self.run_one(job)
            elapsed = time.perf_counter() - started
            average = self.average_seconds
            self.average_seconds = elapsed if average is None else average * 0.8 + elapsed * 0.2
            if failure is None:
                completed.append((job, result, time.time()))
            else:
                failures.append(failure)
        try:
            self.store.finish(self.owner, completed, failures)
        except Exception as exc:
            if outage_cause(exc) is None:
                raise
            self._keep(completed, failures)
            return
        self._recorded(completed, failures)

    def _keep(self, completed: list[Any], failures: list[Failure]) -> None:
        """Hold a batch's outcomes until the records database is back (flush_unrecorded)."""
        ids = {job.id for job, _, _ in completed} | {f.job.id for f in failures}
        with self._busy_lock:
            room = len(self._kept) + len(ids) <= MAX_UNRECORDED
            if room:
                self._unrecorded.append((completed, failures))
                self._kept.update(ids)
        if not room:
            log.error("queue %s: %d job outcome(s) could not be kept in memory (%d already "
                      "wait); jobs %s will run again when their leases run out",
                      self.spec.name, len(ids), MAX_UNRECORDED, sorted(ids),
                      extra=event("worker error", queue=self.spec.name))
            return
        log.warning("queue %s: records database unreachable; %d job outcome(s) kept in "
                    "memory, written when it is back", self.spec.name, len(ids),
                    extra=event("outcomes kept", queue=self.spec.name, jobs=len(ids)))

    def flush_unrecorded(self) -> int:
        """Write the outcomes kept while the records database was away; how many were
        written. Raises (keeping the rest) while it is still away."""
        with self._busy_lock:
            batches, self._unrecorded = self._unrecorded, []
        written = 0
        for index, (completed, failures) in enumerate(batches):
            try:
                self.store.finish(self.owner, completed, failures)
            except BaseException:
                with self._busy_lock:
                    self._unrecorded[:0] = batches[index:]
                raise
            with self._busy_lock:
                self._kept.difference_update(
                    {job.id for job, _, _ in completed} | {f.job.id for f in failures})
            written += len(completed) + len(failures)
            self._recorded(completed, failures)
        if written:
            log.info("queue %s: wrote %d job outcome(s) kept while the records database "
                     "was away", self.spec.name, written,
                     extra=event("outcomes written", queue=self.spec.name, jobs=written))
        return written

    def _recorded(self, completed: list[Any], failures: list[Failure]) -> None:
        self.jobs_done += len(completed) + len(failures)
        if completed and log.isEnabledFor(logging.INFO):
            for job, _, _ in completed:
                log.info("%s job %s completed", job.queue, job.id,
                         extra=event("job completed", **job_fields(job)))
        for failure in failures:
            if failure.uses_attempt:
                self._log_failure(failure)
            if failure.retry_at is not None:
                self.doorbell.ring_at(failure.retry_at, here=True)

    def _count_rate_limited(self) -> None:
        try:
            self.store.tallies.count(self.spec.name, "rate_limited")
        except Exception as exc:  # a figure for metrics, never a reason to stop
            log.debug("could not count a rate-limited claim: %s", exc)

    def run_one(self, job: ClaimedJob) -> tuple[str | None, Failure | None]:
        """Run one job: (result as JSON text, None) or (None, what went wrong)."""
        handler = self.spec.handler_for(job.name)
        if handler is None:
            return None, self._failure(job, f"no handler for job name {job.name!r}", None,
                                       final=True)
        try:
            context = JobContext(job, self.store)
            if job.timeout:
                value = self._run_timed(handler, context, job.timeout)
            else:
                value = handler(context)
            return (None if value is None else json.dumps(value)), None
        except JobTimeout:
            return None, self._failure(job, f"timed out after {job.timeout:g} s", None,
                                       final=True)
        except RetryLater as exc:
            now = time.time()
            return None, Failure(job, str(exc), None, now, now + exc.seconds, uses_attempt=False)
        except UnrecoverableError as exc:
            return None, self._failure(job, str(exc) or "unrecoverable error",
                                       traceback.format_exc(), final=True)
        except Exception as exc:
            message = str(exc) or type(exc).__name__
            return None, self._failure(job, message, traceback.format_exc())

    def _run_timed(self, handler: Callable[[JobContext], Any], context: JobContext,
                   timeout: float) -> Any:
        slot = getattr(self._slots, "slot", None) or TimedSlot()
        outcome = slot.run(lambda: handler(context), timeout)
        if outcome is None:
            context.cancelled.set()
            self._slots.slot = None
            raise JobTimeout()
        self._slots.slot = slot
        if outcome.error is not None:
            raise outcome.error
        return outcome.value

    def _failure(self, job: ClaimedJob, error: str, trace: str | None,
                 final: bool = False) -> Failure:
        now = time.time()
        retry_at = None
        if not final and job.attempts_made < job.attempts_max:
            retry_at = now + self.spec.backoff_seconds(
                job.backoff_type, job.backoff_delay, job.attempts_made)
        return Failure(job, error, trace, now, retry_at)

    def _log_failure(self, failure: Failure) -> None:
        job = failure.job
        fields = job_fields(job, error=failure.error)
        if failure.retry_at is None:
            log.warning("%s job %s failed for good after %d attempt(s): %s", job.queue, job.id,
                        job.attempts_made, failure.error,
                        extra=event("job failed", final=True, **fields))
        else:
            log.info("%s job %s failed (attempt %d of %d), retrying in %.1f s: %s", job.queue,
                     job.id, job.attempts_made, job.attempts_max,
                     failure.retry_at - failure.finished_at, failure.error,
                     extra=event("job failed", final=False, **fields))
