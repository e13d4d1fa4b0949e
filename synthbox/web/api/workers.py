"""Remote workers over HTTP, for languages without a Faktory client: fetch jobs of a
`remote` queue with a lease (long poll), then ack, fail or beat each (the token scope
`worker` allows these and nothing else). Durations here are seconds, as Faktory's
(`wait`, `retryIn`, `extendBy`). And the connected workers: GET /workers, with quiet and
stop (audited)."""

from __future__ import annotations

import json
import time
from typing import Any, NoReturn

from flask import Blueprint, current_app

from synthbox.checks import check_seconds, check_string, check_whole
from synthbox.errors import Conflict, InputError, NotFound
from synthbox.faktory.jobs import RemoteJobs, remote_jobs
from synthbox.faktory.workers import WorkerRegistry, worker_registry
from synthbox.jobs.engine import Engine
from synthbox.web.api.auth import acting, authenticate_api_request, needs
from synthbox.web.errors import ok
from synthbox.web.requests import json_body

bp = Blueprint("workers_api", __name__, url_prefix="/api/v1")
bp.before_request(authenticate_api_request)

LONGEST_WAIT = 30.0  # seconds a fetch may wait for a job


def engine() -> Engine:
    return current_app.config["SYNTHBOX_ENGINE"]


def jobs() -> RemoteJobs:
    return remote_jobs(engine())


def workers() -> WorkerRegistry:
    return worker_registry(engine())


def _worker(body: dict[str, Any]) -> str | None:
    """The calling worker, named by `wid` (optional): listed, with the jobs it holds."""
    wid = body.get("wid")
    if wid is None:
        return None
    wid = check_string(wid, "wid")
    labels = body.get("labels") or []
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise InputError("labels", "must be a list of strings")
    registry = workers()
    if not registry.known(wid):
        registry.hello(wid, check_string(body.get("hostname") or "?", "hostname"),
                       check_whole(body.get("pid") or 0, "pid", 0, 2**31), labels[:20],
                       "http", acting().address, connected=False)
        registry.sync()  # new to this instance: an ask made through another one applies
    registry.beat(wid, protocol="http")
    return wid


@bp.post("/queues/<name>/fetch")
@needs("worker")
def fetch(name: str) -> Any:
    body = json_body()
    wait = check_seconds(body.get("wait", 0), "wait", allow_zero=True, most=LONGEST_WAIT)
    count = check_whole(body.get("count", 1), "count", 1, 100)
    handle = engine().queues.get(name)
    if handle is None:
        raise NotFound(f"queue: no queue named {name!r}")
    if handle.service.spec.local_consumer:
        raise Conflict(f"queue: {name!r} is not a remote queue: its jobs run in SynthBox",
                       "queue")
    wid = _worker(body)
    if wid is not None and workers().requested(wid):
        return ok({"jobs": [], "state": workers().requested(wid)})
    found = []
    first = jobs().fetch_within([name], wait)
    while first is not None:
        first["leaseUntil"] = int((time.time() + first["reserve_for"]) * 1000)
        found.append(first)
        workers().hold(wid, first["jid"])
        first = jobs().fetch([name]) if len(found) < count else None
    return ok({"jobs": found, "state": ""})


def _held(jid: str) -> NoReturn:
    if jobs().job_id(jid) is None:
        raise NotFound(f"job: no job {jid!r}")
    raise Conflict(f"job: {jid!r} is not held by a worker (its lease ran out, or it "
                   "was finished already)")


@bp.post("/jobs/<jid>/ack")
@needs("worker")
def ack(jid: str) -> Any:
    body = json_body()
    result = body.get("result")
    if not jobs().ack(jid, None if result is None else json.dumps(result)):
        _held(jid)
    workers().release(jid)
    return ok({"jid": jid, "state": "completed"})


@bp.post("/jobs/<jid>/fail")
@needs("worker")
def fail(jid: str) -> Any:
    body = json_body()
    message = check_string(body.get("message") or "failed", "message", 1, 10000)
    errtype = check_string(body.get("errtype") or "Error", "errtype")
    trace = body.get("backtrace") or []
    if isinstance(trace, str):
        trace = trace.splitlines()
    if not isinstance(trace, list) or not all(isinstance(line, str) for line in trace):
        raise InputError("backtrace", "must be a list of lines or one text")
    retry_in = body.get("retryIn")
    if retry_in is not None:
        retry_in = check_seconds(retry_in, "retryIn", allow_zero=True, most=365 * 86400)
    if not jobs().fail(jid, errtype, message, trace[:1000], retry_in):
        _held(jid)
    workers().release(jid)
    return ok({"jid": jid, "state": "failed"})


@bp.post("/jobs/<jid>/beat")
@needs("worker")
def beat(jid: str) -> Any:
    body = json_body()
    seconds = body.get("extendBy")
    if seconds is not None:
        seconds = check_seconds(seconds, "extendBy", most=86400)
    wid = _worker(body)
    until = jobs().extend(jid, seconds)
    if until is None:
        _held(jid)
    return ok({"jid": jid, "leaseUntil": int(until * 1000),
               "state": workers().requested(wid) if wid else ""})


@bp.get("/workers")
@needs("read")
def list_workers() -> Any:
    return ok(workers().listing())


@bp.post("/workers/<wid>/<state>")
@needs("operate")
def signal_worker(wid: str, state: str) -> Any:
    """Ask a worker to go quiet (fetch no more) or to stop, at its next beat."""
    wanted = {"quiet": "quiet", "stop": "terminate"}.get(state)
    if wanted is None:
        raise NotFound("action: one of quiet, stop")
    if not workers().signal(wid, wanted):
        raise NotFound(f"worker: no worker {wid!r} is connected")
    engine().record(acting(), f"worker.{state}", f"worker:{wid}", "")
    return ok({"wid": wid, "state": wanted})
