"""Huey's consumer embedded in the process: threads that read a queue's doorbell.

A doorbell makes a worker thread drain the queue from the records database (see
`runner.py`) until nothing is due. Rings from this process reach its idle workers
through the local bell at once; the broker carries them to the other instances.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from typing import Any

from huey.consumer import BaseProcess, Consumer, Scheduler, Worker

from synthbox.jobs.doorbell import Doorbell
from synthbox.jobs.runner import QueueRunner
from synthbox.threads import start_thread

log = logging.getLogger("synthbox.worker")


ANSWERED_PER_READ = 1000  # answered doorbells one read drops before it returns none


def read_doorbell(huey: Any, bell: Doorbell, queue: str) -> bytes | None:
    """The next doorbell in the broker to answer now, or None: none came (Redis waits up
    to a second), it is for later (back to Huey's schedule), or it is not a doorbell
    (dropped with a warning). Doorbells already answered by a claim that found nothing
    (`Doorbell.is_answered`) are dropped on the way. An unreachable broker raises."""
    for _ in range(ANSWERED_PER_READ):
        data = huey.storage.dequeue()
        if not bell.healthy:
            bell.mark_reachable(True)
        if data is None:
            return None
        try:
            task = huey.deserialize_task(data)
        except Exception:
            log.warning("queue %s: dropped a broker message that is not a doorbell", queue)
            return None
        if bell.is_answered(task):
            continue
        if task.eta and task.eta > datetime.datetime.now(datetime.UTC).replace(tzinfo=None):
            huey.add_schedule(task)
            return None
        return bytes(data)
    return None


class DoorbellWorker(Worker):
    """A Huey worker whose only task is the doorbell: wait for it, then drain the queue.

    On a blocking broker (Redis) the workers wait on the local bell alone and the
    listener reads the broker for them; on SQLite each worker polls the broker between
    waits on the local bell."""

    runner: QueueRunner
    delay: float
    default_delay: float
    max_delay: float
    backoff: float

    def loop(self, now: Any = None) -> None:
        runner = self.runner
        bell = runner.doorbell
        if self.huey.storage.blocking:
            if bell.local.wait(1.0):
                runner.drain()
            return
        try:
            data = read_doorbell(self.huey, bell, runner.spec.name)
        except Exception as exc:
            # Graceful degradation: the broker is gone, the records database is enough.
            bell.mark_reachable(False, exc)
            runner.drain()
            bell.local.wait(1.0)
            return
        if data is not None or bell.local.take() or self.sleep():
            runner.drain()

    def sleep(self) -> bool:
        """Wait on the local bell (a job added in this process is picked up at once); True
        when a ring handed this worker the turn."""
        if self.delay > self.max_delay:
            self.delay = self.max_delay
        rung = self.runner.doorbell.local.wait(self.delay)
        self.delay = self.default_delay if rung else self.delay * self.backoff
        return rung


class DoorbellListener(BaseProcess):
    """Reads a blocking broker (Redis) for the queue's workers and hands each doorbell to
    an idle one as a turn on the local bell.

    A job added in this process rings the local bell too, so a worker here starts on it
    without the broker's round trip. The broker is read only while a worker waits with
    no turn, and a doorbell read just as a local ring took that worker goes back to the
    broker: a busy instance leaves the doorbells to the others."""

    process_name = "Listener"
    runner: QueueRunner

    def loop(self, now: Any = None) -> None:
        runner = self.runner
        bell = runner.doorbell
        if not bell.local.wait_for_idle(1.0, self.stop_flag) or self.stop_flag.is_set():
            return
        try:
            data = read_doorbell(self.huey, bell, runner.spec.name)
            if data is not None and not bell.local.hand_over():
                self.huey.storage.enqueue(data)
        except Exception as exc:
            # Graceful degradation: the broker is gone, the records database is enough.
            bell.mark_reachable(False, exc)
            bell.local.set()
            self.stop_flag.wait(1.0)


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
        self._listener: threading.Thread | None = None
        if self.huey.storage.blocking:
            self._listener = self._create_listener()

    def _create_listener(self) -> threading.Thread:
        listener = DoorbellListener(self.huey, self.stop_flag)
        listener.runner = self.runner
        thread: threading.Thread = self._create_process(listener, "Listener")
        return thread

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
        if self._listener is not None:
            self._listener.start()
        self._monitor = start_thread(f"consumer-{self.runner.spec.name}", self._watch)

    def _watch(self) -> None:
        health_ts = time.monotonic()
        while not self.stop_flag.is_set():
            if self.stop_flag.wait(1.0):
                return
            if time.monotonic() - health_ts >= self._health_check_interval:
                health_ts = time.monotonic()
                self.check_worker_health()
                if self._listener is not None and not self._listener.is_alive():
                    log.warning("queue %s: the broker listener died, restarting",
                                self.runner.spec.name)
                    self._listener = self._create_listener()
                    self._listener.start()

    def request_stop(self) -> None:
        """Stop reading doorbells and claiming jobs; running jobs go on."""
        self.runner.stopping.set()
        self.stop_flag.set()
        self.runner.doorbell.local.wake_all()

    def stop_and_wait(self, deadline: float) -> bool:
        """Stop, and wait until `deadline` for running jobs. True if idle."""
        self.request_stop()
        threads = [t for _, t in self.worker_threads] + [self.scheduler]
        if self._listener is not None:
            threads.append(self._listener)
        for thread in threads:
            thread.join(max(deadline - time.monotonic(), 0))
        return not any(t.is_alive() for t in threads)
