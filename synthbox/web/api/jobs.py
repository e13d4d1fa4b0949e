"""The JSON API under /api/v1: BullMQ's field names, durations in milliseconds."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, current_app, request

from synthbox.errors import InputError, NotAllowed, NotFound, UnknownReference
from synthbox.jobs.engine import Engine
from synthbox.jobs.errors import JobOptionError
from synthbox.jobs.options import API_ALIASES, JOB_FIELDS, api_name
from synthbox.jobs.service import QueueService
from synthbox.web.api.auth import authenticate_api_request, needs
from synthbox.web.errors import ok
from synthbox.web.requests import json_body, page_args

bp = Blueprint("api", __name__, url_prefix="/api/v1")
bp.before_request(authenticate_api_request)

# API option -> (service option, factor to seconds), from the one translation table
_OPTS = {f.api: (f.service, 1000 if f.api_ms else None) for f in JOB_FIELDS}
_OPTS.update({alias: _OPTS[api] for alias, api in API_ALIASES.items()})


def engine() -> Engine:
    return current_app.config["SYNTHBOX_ENGINE"]


def _milliseconds(value: Any, factor: int | None) -> Any:
    if factor and isinstance(value, int | float) and not isinstance(value, bool):
        return value / factor
    return value


def milliseconds_to_seconds(value: Any) -> Any:
    """A duration from the API (ms) for the services (s); a non-number passes through for
    the service to refuse, naming its field."""
    return _milliseconds(value, 1000)


def job_request(item: Any, label: str = "") -> dict[str, Any]:
    """An API job (`{"name", "data", "opts"}`) as QueueService options, in seconds."""
    if not isinstance(item, Mapping):
        raise JobOptionError(label.rstrip(".") or "body", "must be a JSON object")
    unknown = set(item) - {"name", "data", "opts"}
    if unknown:
        raise JobOptionError(label + sorted(unknown)[0], "unknown field; one of name, data, opts")
    opts = item.get("opts") or {}
    if not isinstance(opts, Mapping):
        raise JobOptionError(label + "opts", "must be a JSON object")
    job: dict[str, Any] = {"name": item.get("name"), "data": item.get("data")}
    for key, value in opts.items():
        if key not in _OPTS:
            raise JobOptionError(label + "opts." + key,
                                 f"unknown option; one of {', '.join(_OPTS)}")
        target, factor = _OPTS[key]
        if key == "backoff" and isinstance(value, Mapping):
            value = {**value, "delay": _milliseconds(value.get("delay"), 1000)} \
                if "delay" in value else dict(value)
        job[target] = _milliseconds(value, factor)
    return job


def api_field(field: str) -> str:
    """The service's name for a field, as the API client wrote it."""
    match = re.match(r"(jobs\[\d+\]\.)?(.*)", field)
    assert match is not None
    prefix, rest = match.group(1) or "", match.group(2)
    if rest in ("name", "data", "state", "limit", "grace") or rest.startswith("opts."):
        return prefix + rest
    return f"{prefix}opts.{api_name(rest)}"


def validated(func: Any, *args: Any, **kwargs: Any) -> Any:
    """Call `func`; a JobOptionError becomes a 400 naming the field as the client wrote it."""
    try:
        return func(*args, **kwargs)
    except JobOptionError as exc:
        raise InputError(api_field(exc.field), exc.rule) from None


# where the jobs of each internal queue are added instead
OWN_API = {"email": "POST /api/v1/emails",
           "orchestration": "POST /api/v1/projects/{project}/orchestrations"}


def writable_queue(name: str) -> QueueService:
    """A queue the generic job API may add to."""
    service = queue_service(name)
    if service.spec.internal:
        raise NotAllowed(f"queue: jobs of the {name} queue are added through its own API "
                         f"({OWN_API.get(name, f'/api/v1/{name}s')})")
    return service


def handled_here(service: QueueService, item: Any, label: str = "") -> None:
    """A job name another writable queue handles, not this one: a 404 naming it (the
    document lists the names of every queue, and cannot tie one to its queue)."""
    name = item.get("name") if isinstance(item, Mapping) else None
    if not isinstance(name, str) or not name or service.spec.handler_for(name) is not None:
        return
    for other in engine().queues:
        spec = queue_service(other).spec
        if not spec.internal and spec.handler_for(name) is not None:
            raise UnknownReference(label + "name", f"queue {service.spec.name} has no job "
                                                   f"named {name!r}; queue {other} has")


def queue_service(name: str) -> QueueService:
    return engine().service(name)


# -- queues ---------------------------------------------------------------------------------

@bp.get("/queues")
@needs("read")
def list_queues() -> Any:
    return ok(engine().overview())


@bp.get("/queues/<name>/stats")
@needs("read")
def queue_stats(name: str) -> Any:
    return ok(queue_service(name).get_stats())


# -- jobs -----------------------------------------------------------------------------------

@bp.post("/queues/<name>/jobs")
@needs("jobs:write")
def add_job(name: str) -> Any:
    service = writable_queue(name)
    payload = json_body()
    handled_here(service, payload)
    job = validated(job_request, payload)
    return ok(validated(service.add_bulk, [job])[0], 201)


@bp.post("/queues/<name>/jobs/bulk")
@needs("jobs:write")
def add_jobs(name: str) -> Any:
    service = writable_queue(name)
    items = json_body().get("jobs")
    if not isinstance(items, list) or not items:
        raise InputError("jobs", "must be a non-empty list of jobs")
    if len(items) > 10000:
        raise InputError("jobs", "at most 10000 jobs in one request")
    for i, item in enumerate(items):
        handled_here(service, item, f"jobs[{i}].")
    jobs = [validated(job_request, item, f"jobs[{i}].") for i, item in enumerate(items)]
    return ok(validated(service.add_bulk, jobs), 201)


@bp.get("/queues/<name>/jobs")
@needs("read")
def list_jobs(name: str) -> Any:
    service = queue_service(name)
    state = request.args.get("state", "waiting")
    limit, before = page_args()
    jobs, cursor = validated(service.list_jobs, state, limit, before)
    return ok({"jobs": jobs, "nextCursor": cursor})


@bp.get("/queues/<name>/jobs/<job_id>")
@needs("read")
def get_job(name: str, job_id: str) -> Any:
    job = queue_service(name).get_job(job_id)
    if job is None:
        raise NotFound(f"job: no job {job_id!r} in queue {name}")
    return ok(job)
