"""Periodic work as a declared table: each task has a name, an interval and a function, and
one loop runs whichever are due, timing each and counting its errors (shown on /metrics).
Every instance runs the same table; each task is safe to run in several at once."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from synthbox.records.outage import is_busy, outage_cause

log = logging.getLogger("synthbox.upkeep")

TICK = 0.25  # seconds between looks at the table
BUSY_WAIT = 30.0  # seconds a task waits for a locked SQLite before giving its turn up


@dataclass
class Periodic:
    """`fn` runs every `every` seconds, the first time `first_after` seconds after start.
    It may return how long to wait before its next run instead (a pass that left work
    behind comes back sooner)."""

    name: str
    every: float
    fn: Callable[..., float | None]
    first_after: float = 0.0
    runs: int = field(default=0, compare=False)
    errors: int = field(default=0, compare=False)
    seconds: float = field(default=0.0, compare=False)  # spent running it, in all
    next_at: float = field(default=0.0, compare=False)  # time.monotonic()

    def bound(self, *args: Any) -> Periodic:
        """This task with its function's arguments given (a queue's task gets its service)."""
        return replace(self, fn=functools.partial(self.fn, *args))

    def run(self, now: float) -> None:
        started = time.perf_counter()
        wait: float | None = None
        try:
            wait = run_when_free(self.fn)
        except Exception as exc:
            self.errors += 1
            if is_busy(exc):
                log.warning("periodic task %s: the records database stayed locked for %g s; "
                            "run again next turn", self.name, BUSY_WAIT)
            elif outage_cause(exc) is None:  # an outage is logged once, by the database
                log.exception("periodic task %s failed", self.name)
        finally:
            self.runs += 1
            self.seconds += time.perf_counter() - started
            self.next_at = now + (self.every if wait is None else wait)


def run_when_free(fn: Callable[[], Any], wait: float = BUSY_WAIT) -> Any:
    """`fn()`, called again while SQLite says "database is locked" (another process or a
    long write holds it past the busy timeout), for up to `wait` seconds. Only for work
    that is safe to repeat: a background reader, an idempotent upkeep step."""
    give_up = time.monotonic() + wait
    pause = 0.1
    while True:
        try:
            return fn()
        except Exception as exc:
            if not is_busy(exc) or time.monotonic() + pause > give_up:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 2.0)


class PeriodicLoop:
    """Runs a table of Periodic tasks in this thread until `stopped` is set."""

    def __init__(self, tasks: Sequence[Periodic], stopped: threading.Event):
        self.tasks = tasks  # shared: the owner may add and remove tasks while it runs
        self.stopped = stopped

    def run(self) -> None:
        start = time.monotonic()
        for task in self.tasks:
            task.next_at = start + task.first_after
        while not self.stopped.wait(TICK):
            for task in list(self.tasks):
                now = time.monotonic()
                if now >= task.next_at and not self.stopped.is_set():
                    task.run(now)
