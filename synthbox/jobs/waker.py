"""One thread that rings doorbells at given times (retries, delayed jobs, rate limits).

Huey's scheduler ticks once a second; this one is precise to a few milliseconds for
the jobs this instance knows about. The broker's schedule and the upkeep sweep cover
the rest, so a lost timer delays a job, never loses it.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable

from synthbox.threads import start_thread


class Waker:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None

    def call_at(self, when: float, action: Callable[[], None]) -> None:
        """Run `action` at Unix time `when` (at once if it has passed)."""
        with self._cond:
            heapq.heappush(self._heap, (when, next(self._seq), action))
            if self._thread is None and not self._stopped:
                self._thread = start_thread("waker", self._run)
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    now = time.time()
                    if self._heap and self._heap[0][0] <= now:
                        _, _, action = heapq.heappop(self._heap)
                        break
                    self._cond.wait(self._heap[0][0] - now if self._heap else None)
                else:
                    return
            try:
                action()
            except Exception:  # a failed ring is retried by the upkeep sweep
                pass
