"""Huey's consumer embedded in the process: threads that read a queue's doorbell.

A doorbell makes a worker thread drain the queue from the records database (see
`runner.py`) until nothing is due.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from typing import Any

from huey.consumer import Consumer, Scheduler, Worker

from synthbox.jobs.runner import QueueRunner

log = logging.getLogger("synthbox.worker")


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
