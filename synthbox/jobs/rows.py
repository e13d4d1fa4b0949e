"""The rows the engine passes around, each described once: a stored job, a new one, a
claimed one, a failed attempt. The SQL that reads and writes them is built from these."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import NamedTuple


class JobRow(NamedTuple):
    """A stored job, as its page, the API and the CLI show it (times in Unix seconds)."""

    id: int
    queue: str
    name: str
    data: str  # JSON
    status: str  # waiting, active, completed or failed; "delayed" is waiting, not yet due
    priority: int  # 0-10, higher first
    run_at: float  # due from then
    attempts_made: int
    attempts_max: int
    backoff_type: str  # fixed or exponential
    backoff_delay: float
    timeout: float | None
    stalled_count: int
    result: str | None  # JSON
    progress: int
    failed_reason: str | None
    created_at: float
    started_at: float | None  # of the latest attempt
    finished_at: float | None
    job_key: str | None  # the deduplication key (jobId in the API)


class NewJob(NamedTuple):
    """A job's options checked and resolved against its queue's defaults: one INSERT."""

    queue: str
    name: str
    data: str
    priority: int
    run_at: float
    attempts_max: int
    backoff_type: str
    backoff_delay: float
    timeout: float | None
    created_at: float
    job_key: str | None

    def stored(self, job_id: int) -> JobRow:
        """The row this job is once inserted as `job_id`."""
        # every add makes one: unpacked at once (named reads cost more), and tuple.__new__
        # skips the generated __new__'s argument binding
        (queue, name, data, priority, run_at, attempts_max, backoff_type, backoff_delay,
         timeout, created_at, job_key) = self
        return tuple.__new__(JobRow, (
            job_id, queue, name, data, "waiting", priority, run_at, 0, attempts_max,
            backoff_type, backoff_delay, timeout, 0, None, 0, None, created_at, None, None,
            job_key))


JOB_COLUMNS = ", ".join(JobRow._fields)
INSERT_JOB = (f"INSERT INTO job ({', '.join(NewJob._fields)}, status, attempts_made, "
              "stalled_count, progress) VALUES ")
INSERT_VALUES = f"({', '.join('?' * len(NewJob._fields))}, 'waiting', 0, 0, 0)"


@dataclass(slots=True)
class ClaimedJob:
    """A job a worker has claimed: the columns the claim reads back, in their order, then
    the claim's own queue and start time."""

    id: int
    name: str
    data: str
    attempts_made: int
    attempts_max: int
    backoff_type: str
    backoff_delay: float
    timeout: float | None
    priority: int
    run_at: float
    queue: str
    started_at: float


@dataclass(slots=True)
class Failure:
    job: ClaimedJob
    error: str
    traceback: str | None
    finished_at: float
    retry_at: float | None  # None: no attempts left, the job fails for good
    uses_attempt: bool = True  # False: a RetryLater, which uses no attempt and records no error


CLAIMED_COLUMNS = tuple(f.name for f in fields(ClaimedJob))[:-2]  # what a claim reads back
