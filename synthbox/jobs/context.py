"""What a handler receives: the job's data and a way to report on it."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from synthbox.jobs.errors import JobOptionError
from synthbox.jobs.rows import ClaimedJob
from synthbox.jobs.store import JobStore
from synthbox.records.outage import outage_cause

log = logging.getLogger("synthbox.worker")
_MADE_ONCE = threading.Lock()  # a context's `cancelled` is made by whichever thread asks first


class JobContext:
    """The running job: `data`, `id`, `attempt`, plus `progress()`, `log()` and `sleep()`."""

    def __init__(self, job: ClaimedJob, store: JobStore):
        self.id = job.id
        self.queue = job.queue
        self.name = job.name
        self.attempt = job.attempts_made
        self.attempts = job.attempts_max
        self.priority = job.priority
        self.timeout: float | None = job.timeout  # seconds, for work that keeps its own time
        self.data: Any = json.loads(job.data)
        self._cancelled: threading.Event | None = None
        self._store = store

    @property
    def cancelled(self) -> threading.Event:
        """Set when the job is to stop (its timeout passed). Made when first asked for:
        most jobs never are, and an Event (its Condition) was a fifth of the interpreter's
        time on a drained no-op job with PostgreSQL records (py-spy --gil)."""
        cancelled = self._cancelled
        if cancelled is None:
            with _MADE_ONCE:
                if self._cancelled is None:
                    self._cancelled = threading.Event()
                cancelled = self._cancelled
        return cancelled

    def progress(self, percent: int | float) -> None:
        """Record how far the job is, 0 to 100."""
        if isinstance(percent, bool) or not isinstance(percent, int | float) or not (
                0 <= percent <= 100):
            raise JobOptionError("progress", "must be a number from 0 to 100")
        self._report("UPDATE job SET progress=? WHERE id=?", (int(percent), self.id),
                     f"progress {int(percent)}%")

    def log(self, line: str) -> None:
        """Append a line to the job's log, shown with the job."""
        self._report("INSERT INTO job_log (job_id, at, line) VALUES (?, ?, ?)",
                     (self.id, time.time(), str(line)[:10000]), f"log line {line!r}")

    def _report(self, sql: str, params: tuple[Any, ...], what: str) -> None:
        """Progress and log lines while the records database is away go to the process
        log instead: the job itself keeps running."""
        try:
            self._store.execute(sql, params)
        except Exception as exc:
            cause = outage_cause(exc)
            if cause is None:
                raise
            log.info("%s job %s: %s not recorded (records database unreachable: %s)",
                     self.queue, self.id, what[:200], cause)

    def sleep(self, seconds: float) -> bool:
        """Wait, but stop early if the job is cancelled or timed out. True if it slept fully."""
        return not self.cancelled.wait(seconds)
