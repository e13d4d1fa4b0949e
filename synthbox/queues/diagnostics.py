"""The `diagnostics` queue: jobs that check an install and feed benchmarks and crash tests.

- `noop`: does nothing;
- `sleep` `{"seconds": s}`: waits s seconds, reporting 50% progress half-way (stops early
  when the job times out);
- `fail` `{"times": n, "message": m}`: fails its first n attempts, then succeeds;
- `hold` `{"megabytes": m, "seconds": s}`: holds m MB of memory for s seconds (to check
  `max_memory_restart`).
"""

from __future__ import annotations

from typing import Any

from synthbox.jobs.context import JobContext
from synthbox.jobs.errors import JobOptionError
from synthbox.jobs.spec import QueueSpec


def noop(job: JobContext) -> None:
    return None


def sleep(job: JobContext) -> dict[str, Any]:
    seconds = job.data.get("seconds", 1) if isinstance(job.data, dict) else 1
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise JobOptionError("data.seconds", "must be a number of seconds, 0 or more")
    job.log(f"attempt {job.attempt}: sleeping {seconds} s")
    finished = job.sleep(seconds / 2)
    if finished:
        job.progress(50)
        finished = job.sleep(seconds / 2)
    return {"slept": seconds, "finished": finished}


class DiagnosticFailure(Exception):
    pass


def fail(job: JobContext) -> dict[str, Any]:
    data = job.data if isinstance(job.data, dict) else {}
    times = data.get("times", 1)
    if job.attempt <= times:
        raise DiagnosticFailure(data.get("message") or f"planned failure {job.attempt} of {times}")
    return {"succeededOnAttempt": job.attempt}


def hold(job: JobContext) -> dict[str, Any]:
    data = job.data if isinstance(job.data, dict) else {}
    megabytes, seconds = data.get("megabytes", 10), data.get("seconds", 1)
    if isinstance(megabytes, bool) or not isinstance(megabytes, int) or not 0 < megabytes <= 4096:
        raise JobOptionError("data.megabytes", "must be a whole number from 1 to 4096")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise JobOptionError("data.seconds", "must be a number of seconds, 0 or more")
    block = b"x" * (megabytes * 1024 * 1024)  # written, so resident
    job.sleep(seconds)
    return {"held": len(block) >> 20}


DIAGNOSTICS = QueueSpec(
    name="diagnostics",
    handlers={"noop": noop, "sleep": sleep, "fail": fail, "hold": hold},
    concurrency=8,
    attempts=1,
    backoff_type="exponential",
    backoff_delay=1.0,
)
