"""Running jobs: claim a batch, run each with its timeout, record the outcomes together.

Each queue has a Huey consumer embedded in the process. Its worker threads read
doorbells; a doorbell makes a worker drain the queue from the records database
until nothing is due (so one doorbell may stand for thousands of jobs and a
duplicate costs one empty claim).
"""

from __future__ import annotations

import ctypes
import datetime
import json
import logging
import queue as stdqueue
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from huey.consumer import Consumer, Scheduler, Worker

from synthbox.jobs.broker import Doorbell
from synthbox.jobs.context import JobContext
from synthbox.jobs.errors import JobTimeout, RetryLater, UnrecoverableError
from synthbox.jobs.ratelimit import RedisRateLimiter
from synthbox.jobs.spec import QueueSpec
from synthbox.jobs.store import ClaimedJob, Failure, JobStore
from synthbox.logs import event

log = logging.getLogger("synthbox.worker")

MAX_BATCH = 100
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
        self._thread = threading.Thread(target=self._serve, name="job-runner", daemon=True)
        self._thread.start()

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
        self._busy = 0
        self._busy_lock = threading.Lock()
        self._held: set[int] = set()  # claimed by this instance and not yet recorded
        self._slots = threading.local()

    def held_ids(self) -> list[int]:
        """The jobs whose leases the heartbeat renews."""
        with self._busy_lock:
            return list(self._held)

    # -- claiming -----------------------------------------------------------------------

    def batch_size(self) -> int:
        """Short jobs are claimed in batches; long ones one at a time, so `active` stays true."""
        if self.average_seconds is None:
            size = 1
        else:
            size = max(1, min(MAX_BATCH, int(BATCH_SECONDS / max(self.average_seconds, 1e-6))))
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

    def drain(self) -> int:
        """Run due jobs until none is left (or this instance stops). Returns how many ran."""
        with self._busy_lock:
            self._busy += 1
        ran = 0
        try:
            while not self.stopping.is_set():
                limit = self.batch_size()
                try:
                    jobs, wait = self.claim(limit)
                except Exception:
                    log.exception("queue %s: claim failed", self.spec.name,
                                  extra=event("worker error", queue=self.spec.name))
                    return ran
                if not jobs:
                    if wait:  # the rate limit said no: try again when it will say yes
                        self.doorbell.waker.call_at(time.time() + wait, self.doorbell.ring)
                        self._count_rate_limited()
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
        self.store.finish(self.owner, completed, failures)
        self.jobs_done += len(completed) + len(failures)
        if completed and log.isEnabledFor(logging.INFO):
            for job, _, _ in completed:
                log.info("%s job %s completed", job.queue, job.id,
                         extra=event("job completed", **job_fields(job)))
        for failure in failures:
            if failure.counts:
                self._log_failure(failure)
            if failure.retry_at is not None:
                self.doorbell.ring_at(failure.retry_at, here=True)

    def _count_rate_limited(self) -> None:
        try:
            self.store.count(self.spec.name, "rate_limited")
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
            return None, Failure(job, str(exc), None, now, now + exc.seconds, counts=False)
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


class DoorbellWorker(Worker):
    """A Huey worker whose only task is the doorbell: read it, then drain the queue."""

    runner: QueueRunner
    delay: float
    default_delay: float
    max_delay: float
    backoff: float

    def loop(self, now: Any = None) -> None:
        runner = self.runner
        bell = runner.doorbell
        try:
            data = self.huey.storage.dequeue()
        except Exception as exc:
            # Graceful degradation: the broker is gone, the records database is enough.
            bell.mark_reachable(False, exc)
            runner.drain()
            bell.local.wait(1.0)
            return
        if not bell.healthy:
            bell.mark_reachable(True)
        if data is not None:
            try:
                task = self.huey.deserialize_task(data)
            except Exception:
                log.warning("queue %s: dropped a broker message that is not a doorbell",
                            runner.spec.name)
                return
            if task.eta and task.eta > datetime.datetime.now(datetime.UTC).replace(tzinfo=None):
                self.huey.add_schedule(task)
                return
            runner.drain()
        elif bell.local.take():
            runner.drain()
        elif not self.huey.storage.blocking and self.sleep():
            runner.drain()

    def sleep(self) -> bool:
        """Wait on the local bell (a job added in this process is picked up at once); True
        when a ring handed this worker the turn."""
        if self.delay > self.max_delay:
            self.delay = self.max_delay
        rung = self.runner.doorbell.local.wait(self.delay)
        self.delay = self.default_delay if rung else self.delay * self.backoff
        return rung


class QuietScheduler(Scheduler):
    """Huey's scheduler (delayed doorbells), resting while the broker is known to be down:
    the doorbell has said so once, and the records are processed without it meanwhile."""

    runner: QueueRunner

    def loop(self, now: Any = None) -> None:
        if self.runner.doorbell.healthy:
            super().loop(now)
        else:
            self.stop_flag.wait(self.interval)


class EmbeddedConsumer(Consumer):
    """Huey's consumer run as threads inside `synthbox serve`; the host owns the signals."""

    worker_class = DoorbellWorker
    scheduler_class = QuietScheduler

    def __init__(self, runner: QueueRunner):
        self.runner = runner
        super().__init__(runner.doorbell.huey, workers=runner.spec.concurrency, periodic=False,
                         initial_delay=0.05, backoff=1.5, max_delay=1.0,
                         scheduler_interval=1, worker_type="thread",
                         check_worker_health=True, health_check_interval=5)
        self._monitor: threading.Thread | None = None

    def _create_worker(self) -> DoorbellWorker:
        worker = super()._create_worker()
        worker.runner = self.runner
        return worker

    def _create_scheduler(self) -> QuietScheduler:
        scheduler = super()._create_scheduler()
        scheduler.runner = self.runner
        return scheduler

    def _set_signal_handlers(self) -> None:
        pass

    def start_in_thread(self) -> None:
        self.start()
        self._monitor = threading.Thread(target=self._watch, daemon=True,
                                         name=f"consumer-{self.runner.spec.name}")
        self._monitor.start()

    def _watch(self) -> None:
        health_ts = time.monotonic()
        while not self.stop_flag.is_set():
            if self.stop_flag.wait(1.0):
                return
            if time.monotonic() - health_ts >= self._health_check_interval:
                health_ts = time.monotonic()
                self.check_worker_health()

    def request_stop(self) -> None:
        """Stop reading doorbells and claiming jobs; running jobs go on."""
        self.runner.stopping.set()
        self.stop_flag.set()
        self.runner.doorbell.local.wake_all()

    def stop_and_wait(self, deadline: float) -> bool:
        """Stop, and wait until `deadline` for running jobs. True if idle."""
        self.request_stop()
        threads = [t for _, t in self.worker_threads] + [self.scheduler]
        for thread in threads:
            thread.join(max(deadline - time.monotonic(), 0))
        return not any(t.is_alive() for t in threads)
