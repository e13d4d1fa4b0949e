"""A job's options, checked: what `add()` accepts, with errors that name the field."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NamedTuple

from synthbox.checks import check_one_of, check_seconds, check_whole
from synthbox.errors import InputError
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
    the field (`prefix` locates a job in a bulk add), as a JobOptionError.

    Every add runs this once per job, so it is one function (a Python call costs more than
    most of the checks) and builds its tuple directly."""
    try:
        for option in job:
            if option not in JOB_OPTIONS:
                raise InputError(prefix + option,
                                 f"unknown option; one of {', '.join(sorted(JOB_OPTIONS))}")
        name = job.get("name")
        if not isinstance(name, str) or not name or spec.handler_for(name) is None:
            raise InputError(prefix + "name", f"queue {spec.name} has no job named {name!r}; "
                             f"one of {', '.join(sorted(spec.handlers))}" if name
                             and isinstance(name, str) else "must be a non-empty string")
        data = job.get("data")
        try:
            data = "{}" if data is None else json.dumps(data, allow_nan=False)
        except (TypeError, ValueError):
            raise InputError(prefix + "data", "must be JSON: objects, lists, strings, "
                             "numbers, true, false or null") from None
        run_at = now
        if job.get("run_at") is not None:
            run_at = check_run_at(job["run_at"], prefix + "run_at")
        elif job.get("delay") is not None:
            run_at = now + check_run_at(job["delay"], prefix + "delay", now)
        backoff_type, backoff_delay = (spec.backoff_type, spec.backoff_delay) if job.get(
            "backoff") is None else _backoff(spec, job["backoff"], prefix + "backoff")
        timeout = spec.timeout if job.get("timeout") is None else check_seconds(
            job["timeout"], prefix + "timeout")
        key = job.get("key")
        if key is not None and (not isinstance(key, str | int) or isinstance(key, bool)
                                or not 1 <= len(str(key)) <= 255):
            raise InputError(prefix + "key", "must be a string of 1 to 255 characters")
        return tuple.__new__(NewJob, (  # as in NewJob.stored: every add makes one
            spec.name, name, data,
            check_whole(job.get("priority", 0), prefix + "priority", 0, HIGH_PRIORITY), run_at,
            check_whole(job.get("attempts", spec.attempts), prefix + "attempts", 1, 1000),
            backoff_type, backoff_delay, timeout, now, None if key is None else str(key)))
    except JobOptionError:
        raise
    except InputError as exc:
        raise JobOptionError(exc.field, exc.rule) from None


def _backoff(spec: QueueSpec, backoff: Any, field: str) -> tuple[str, float]:
    """(type, delay in seconds): what the job gives, else the queue's."""
    if not isinstance(backoff, Mapping):
        raise InputError(field, 'must be {"type": ..., "delay": ...}')
    return (check_one_of(backoff.get("type", spec.backoff_type), field + ".type",
                         BACKOFF_TYPES),
            check_seconds(backoff.get("delay", spec.backoff_delay), field + ".delay",
                          allow_zero=True))


@contextmanager
def job_option_errors() -> Iterator[None]:
    """Bad input met inside as a JobOptionError: each interface then names the field its
    own way (`opts.jobId` in the API, `--job-id` in the CLI)."""
    try:
        yield
    except JobOptionError:
        raise
    except InputError as exc:
        raise JobOptionError(exc.field, exc.rule) from None


def check_run_at(value: Any, field: str, now: float = 0.0) -> float:
    """Seconds from `now` (a delay, or a Unix time with now 0), no later than 9999."""
    return check_seconds(value, field, allow_zero=True, most=LATEST_RUN_AT - now,
                         past_most="is too far in the future (the latest is 9999-12-31)")
