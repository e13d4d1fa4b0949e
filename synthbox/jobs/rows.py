"""The rows the engine passes around: a claimed job, and a failed attempt of one."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class ClaimedJob:
    id: int
    queue: str
    name: str
    data: str
    attempts_made: int
    attempts_max: int
    backoff_type: str
    backoff_delay: float
    timeout: float | None
    priority: int
    run_at: float
    started_at: float


@dataclass(slots=True)
class Failure:
    job: ClaimedJob
    error: str
    traceback: str | None
    finished_at: float
    retry_at: float | None  # None: no attempts left, the job fails for good
    counts: bool = True  # False: a RetryLater, which uses no attempt and records no error
