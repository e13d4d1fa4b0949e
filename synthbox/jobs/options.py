"""A job's options, checked: what `add()` accepts, with errors that name the field."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

from synthbox.jobs.errors import JobOptionError
from synthbox.jobs.rows import NewJob
from synthbox.jobs.spec import BACKOFF_TYPES, QueueSpec
from synthbox.jobs.store import PRIORITIES

HIGH_PRIORITY = PRIORITIES[-1]
LATEST_RUN_AT = 253402300799.0  # 9999-12-31T23:59:59Z: later is a mistake, not a plan


class JobField(NamedTuple):
    """One job option by its name in each interface: the one translation table."""

    service: str  # QueueService.add(**options); durations and times in seconds
    api: str  # `opts.<api>` in the JSON API (BullMQ's names)
    flag: str | None  # `synthbox jobs add --<flag>`, None where the CLI has none
    api_ms: bool = False  # the API gives it in milliseconds


JOB_FIELDS = (
    JobField("priority", "priority", "priority"),
    JobField("delay", "delay", "delay", api_ms=True),
    JobField("run_at", "runAt", None, api_ms=True),
    JobField("attempts", "attempts", "attempts"),
    JobField("backoff", "backoff", None),  # {"type", "delay"}: the API's delay in ms
    JobField("timeout", "timeout", None, api_ms=True),
    JobField("key", "jobId", "job-id"),  # the deduplication key: BullMQ calls it jobId
)
API_ALIASES = {"key": "jobId"}  # opts.key, another name for opts.jobId
JOB_OPTIONS = frozenset({"name", "data", *(f.service for f in JOB_FIELDS)})


def api_name(field: str) -> str:
    """The JSON API's name for a service field ("key" -> "jobId"; "backoff.delay" stays)."""
    head, dot, tail = field.partition(".")
    api = next((f.api for f in JOB_FIELDS if f.service == head), head)
    return api + dot + tail


def flag_name(field: str) -> str:
    """The CLI's flag for a service field ("key" -> "--job-id"), or the field itself."""
    flag = next((f.flag for f in JOB_FIELDS if f.service == field and f.flag), None)
    return f"--{flag}" if flag else field


def job_row(spec: QueueSpec, job: Mapping[str, Any], now: float,
            prefix: str = "") -> NewJob:
    """A job's options checked and resolved against its queue's defaults. Every error names
    the field (`prefix` locates a job in a bulk add)."""
    for key in job:
        if key not in JOB_OPTIONS:
            raise JobOptionError(prefix + key,
                                 f"unknown option; one of {', '.join(sorted(JOB_OPTIONS))}")
    name = job.get("name")
    if not isinstance(name, str) or not name:
        raise JobOptionError(prefix + "name", "must be a non-empty string")
    if spec.handler_for(name) is None:
        raise JobOptionError(prefix + "name", f"queue {spec.name} has no job named {name!r}; "
                             f"one of {', '.join(sorted(spec.handlers))}")
    try:
        data = json.dumps(job.get("data") if job.get("data") is not None else {},
                          allow_nan=False)
    except (TypeError, ValueError):
        raise JobOptionError(prefix + "data", "must be JSON: objects, lists, strings, "
                             "numbers, true, false or null") from None
    priority = check_whole(job.get("priority", 0), prefix + "priority", 0, HIGH_PRIORITY)
    run_at = now
    if job.get("run_at") is not None:
        run_at = check_seconds(job["run_at"], prefix + "run_at", allow_zero=True,
                          most=LATEST_RUN_AT)
    elif job.get("delay") is not None:
        run_at = now + check_seconds(job["delay"], prefix + "delay", allow_zero=True,
                                most=LATEST_RUN_AT - now)
    attempts = check_whole(job.get("attempts", spec.attempts), prefix + "attempts", 1, 1000)
    backoff_type, backoff_delay = spec.backoff_type, spec.backoff_delay
    if job.get("backoff") is not None:
        backoff = job["backoff"]
        if not isinstance(backoff, Mapping):
            raise JobOptionError(prefix + "backoff", 'must be {"type": ..., "delay": ...}')
        backoff_type = backoff.get("type", backoff_type)
        if backoff_type not in BACKOFF_TYPES:
            raise JobOptionError(prefix + "backoff.type",
                                 f"must be one of {', '.join(BACKOFF_TYPES)}")
        backoff_delay = check_seconds(backoff.get("delay", backoff_delay),
                                 prefix + "backoff.delay", allow_zero=True)
    timeout = spec.timeout
    if job.get("timeout") is not None:
        timeout = check_seconds(job["timeout"], prefix + "timeout")
    dedup_key = job.get("key")
    if dedup_key is not None and (
            not isinstance(dedup_key, str | int) or isinstance(dedup_key, bool)
            or not str(dedup_key) or len(str(dedup_key)) > 255):
        raise JobOptionError(prefix + "key", "must be a string of 1 to 255 characters")
    return NewJob(spec.name, name, data, priority, run_at, attempts, backoff_type,
                  backoff_delay, timeout, now, None if dedup_key is None else str(dedup_key))


def check_whole(value: Any, field: str, low: int, high: int) -> int:
    """`value` if it is a whole number from `low` to `high`; else an error naming `field`."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise JobOptionError(field, f"must be a whole number from {low} to {high}")
    return value


def check_seconds(value: Any, field: str, allow_zero: bool = False,
            most: float = LATEST_RUN_AT) -> float:
    """`value` as seconds if it is a number in range; else an error naming `field`."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise JobOptionError(field, "must be a number")
    if value < 0 or (value == 0 and not allow_zero):
        raise JobOptionError(field, "must be 0 or more" if allow_zero else "must be more than 0")
    if value > most:
        raise JobOptionError(field, "is too far in the future (the latest is 9999-12-31)")
    return float(value)
