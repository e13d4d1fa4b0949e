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

log = logging.getLogger("synthbox.upkeep")

TICK = 0.25  # seconds between looks at the table


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
            wait = self.fn()
        except Exception:
            self.errors += 1
            log.exception("periodic task %s failed", self.name)
        finally:
            self.runs += 1
            self.seconds += time.perf_counter() - started
            self.next_at = now + (self.every if wait is None else wait)


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
