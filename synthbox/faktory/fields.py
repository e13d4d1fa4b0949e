"""A Faktory job as SynthBox reads it (PUSH, PUSHB) and writes it (FETCH): `jobtype` is the
job's name, `args` its data, `jid` its key; every bad field is an InputError naming it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

from synthbox.errors import InputError
from synthbox.userqueues.definitions import check_name

DEFAULT_QUEUE = "default"
DEFAULT_RETRY = 25  # Faktory's
DEFAULT_RESERVE = 1800.0  # seconds, Faktory's
DEFAULT_PRIORITY = 5
KNOWN = frozenset({"jid", "jobtype", "args", "queue", "priority", "at", "retry", "reserve_for",
                   "backtrace", "custom", "created_at", "enqueued_at", "failure"})


class PushedJob(NamedTuple):
    """A pushed job's SynthBox options (for QueueService's job_row) and its Faktory extras."""

    queue: str
    options: dict[str, Any]
    jid: str
    custom: str | None
    reserve_for: float
    retry: int
    backtrace: int


def _whole(job: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = job.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InputError(key, f"must be a whole number from {low} to {high}")
    return value


def parse_time(value: Any, key: str) -> float:
    """An RFC 3339 time (Faktory's `at`) as Unix seconds."""
    if not isinstance(value, str):
        raise InputError(key, "must be an RFC 3339 time, e.g. 2030-01-01T12:00:00Z")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(key, "must be an RFC 3339 time, e.g. 2030-01-01T12:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def rfc3339(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="microseconds") \
        .replace("+00:00", "Z")


def read_job(job: Any) -> PushedJob:
    """A pushed job checked: an InputError names the first bad field."""
    if not isinstance(job, Mapping):
        raise InputError("job", "must be a JSON object")
    jid = job.get("jid")
    if not isinstance(jid, str) or not 1 <= len(jid) <= 255:
        raise InputError("jid", "must be a string of 1 to 255 characters")
    jobtype = job.get("jobtype")
    if not isinstance(jobtype, str) or not jobtype or len(jobtype) > 255:
        raise InputError("jobtype", "must be a non-empty string")
    args = job.get("args", [])
    if not isinstance(args, list):
        raise InputError("args", "must be a JSON array")
    queue = job.get("queue") or DEFAULT_QUEUE
    check_name(queue, "queue")
    custom = job.get("custom")
    if custom is not None and not isinstance(custom, Mapping):
        raise InputError("custom", "must be a JSON object")
    retry = _whole(job, "retry", DEFAULT_RETRY, -1, 999)
    options: dict[str, Any] = {
        "name": jobtype, "data": args, "key": jid, "attempts": max(retry, 0) + 1,
        "priority": _whole(job, "priority", DEFAULT_PRIORITY, 0, 10)}
    if job.get("at"):
        options["run_at"] = parse_time(job["at"], "at")
    reserve = job.get("reserve_for") or DEFAULT_RESERVE
    if isinstance(reserve, bool) or not isinstance(reserve, int | float) \
            or not 1 <= reserve <= 86400:
        raise InputError("reserve_for", "must be a number of seconds from 1 to 86400")
    return PushedJob(queue, options, jid, None if custom is None else json.dumps(custom),
                     float(reserve), retry, _whole(job, "backtrace", 0, 0, 1000))


def fetched_job(row: tuple[Any, ...], failure: tuple[Any, ...] | None) -> dict[str, Any]:
    """The job a worker gets: Faktory's fields from a job row joined with its extras."""
    (job_id, queue, name, data, priority, attempts_made, attempts_max, created_at, run_at,
     jid, custom, reserve_for, retry, backtrace) = row
    args = json.loads(data)
    job: dict[str, Any] = {
        "jid": jid or str(job_id), "queue": queue, "jobtype": name,
        "args": args if isinstance(args, list) else [args], "priority": priority,
        "created_at": rfc3339(created_at), "enqueued_at": rfc3339(run_at),
        "retry": attempts_max - 1 if retry is None else retry,
        "reserve_for": int(reserve_for or DEFAULT_RESERVE), "backtrace": backtrace or 0}
    if custom:
        job["custom"] = json.loads(custom)
    if failure is not None:
        failed_at, error, trace = failure
        errtype, _, message = (error or "").partition(": ")
        job["failure"] = {"retry_count": attempts_made - 1, "failed_at": rfc3339(failed_at),
                          "errtype": errtype if message else "Error",
                          "message": message or errtype,
                          "backtrace": (trace or "").splitlines()}
    return job
