"""/api/v1/admin: the seed's queue endpoints, job and queue management, users, API tokens
and the audit log. Viewers read, operators act on jobs and queues, admins manage people."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, request

from synthbox.accounts import audit, tokens, users
from synthbox.errors import InputError, NotFound
from synthbox.jobs import operations
from synthbox.jobs.engine import Engine
from synthbox.records.models import STATES
from synthbox.web.api.auth import acting, authenticate_api_request, caller, client_address, needs
from synthbox.web.api.jobs import milliseconds_to_seconds, validated
from synthbox.web.errors import ok
from synthbox.web.requests import json_body, page_args

bp = Blueprint("admin_api", __name__, url_prefix="/api/v1/admin")
bp.before_request(authenticate_api_request)

SEED_STATS = (*STATES, "total")


def engine() -> Engine:
    return current_app.config["SYNTHBOX_ENGINE"]


# -- the seed's endpoints -------------------------------------------------------------------

@bp.get("/<name>/queue")
@needs("read")
def seed_queue(name: str) -> Any:
    """The seed's shape: {"stats": {waiting, active, completed, failed, delayed, total},
    "failedJobs": [...]}, for `email`, `orchestration` or any queue by name."""
    service = engine().service(name)
    stats = service.get_stats()
    # the seed counts jobs of a paused queue as waiting
    seed_stats = {key: stats[key] + (stats["paused"] if key == "waiting" else 0)
                  for key in SEED_STATS}
    failed = [{"id": job["id"], "name": job["name"], "data": job["data"],
               "failedReason": job["failedReason"], "attemptsMade": job["attemptsMade"],
               "timestamp": job["timestamp"], "finishedOn": job["finishedOn"]}
              for job in service.get_failed_jobs(50)]
    return ok({"stats": seed_stats, "failedJobs": failed})


# -- queues and jobs ------------------------------------------------------------------------

@bp.get("/queues")
@needs("read")
def queues() -> Any:
    return ok(engine().overview())


def _filters() -> tuple[str | None, str | None]:
    state = request.args.get("state") or None
    search = request.args.get("search") or None
    return state, search


@bp.get("/queues/<name>/jobs")
@needs("read")
def queue_jobs(name: str) -> Any:
    service = engine().service(name)
    state, search = _filters()
    limit, cursor = page_args()
    jobs, next_cursor = service.list_jobs(state, limit, cursor, search)
    return ok({"jobs": jobs, "nextCursor": next_cursor})


def _bulk(name: str, action: str) -> Any:
    payload = json_body()
    state = payload.get("state")
    search = payload.get("search")
    if state is not None and not isinstance(state, str):
        raise InputError("state", "must be a string")
    if search is not None and not isinstance(search, str):
        raise InputError("search", "must be a string")
    dry_run = payload.get("dryRun", False)
    if not isinstance(dry_run, bool):
        raise InputError("dryRun", "must be true or false")
    count = operations.bulk(engine(), name, action, state, search, dry_run, acting())
    return ok({"dryRun": dry_run, "count": count})


@bp.post("/queues/<name>/jobs/retry")
@needs("operate")
def bulk_retry(name: str) -> Any:
    """Retry the failed jobs matching {"search"}; {"dryRun": true} only counts them."""
    return _bulk(name, "retry")


@bp.post("/queues/<name>/jobs/delete")
@needs("operate")
def bulk_delete(name: str) -> Any:
    """Delete the jobs matching {"state", "search"}; {"dryRun": true} only counts them."""
    return _bulk(name, "delete")


@bp.get("/jobs/<job_id>")
@needs("read")
def job(job_id: str) -> Any:
    return ok(operations.find_job(engine(), job_id)[1])


def _job_action(job_id: str, action: str) -> Any:
    job = operations.job_action(engine(), job_id, action, acting())
    return ok({"removed": True} if job is None else job)


@bp.post("/jobs/<job_id>/retry")
@needs("operate")
def retry_job(job_id: str) -> Any:
    return _job_action(job_id, "retry_job")


@bp.post("/jobs/<job_id>/promote")
@needs("operate")
def promote_job(job_id: str) -> Any:
    return _job_action(job_id, "promote")


@bp.delete("/jobs/<job_id>")
@needs("operate")
def remove_job(job_id: str) -> Any:
    return _job_action(job_id, "remove")


@bp.post("/queues/<name>/retry-failed")
@needs("operate")
def retry_failed(name: str) -> Any:
    count = operations.retry_all_failed(engine(), name, acting())
    return ok({"retried": count})


@bp.post("/queues/<name>/clean")
@needs("operate")
def clean(name: str) -> Any:
    payload = json_body()
    grace = milliseconds_to_seconds(payload.get("grace", 0))
    removed = validated(operations.clean, engine(), name, payload.get("state", "completed"),
                        grace, acting())
    return ok({"removed": removed})


@bp.post("/queues/<name>/pause")
@needs("operate")
def pause(name: str) -> Any:
    operations.set_paused(engine(), name, True, acting())
    return ok({"paused": True})


@bp.post("/queues/<name>/resume")
@needs("operate")
def resume(name: str) -> Any:
    operations.set_paused(engine(), name, False, acting())
    return ok({"paused": False})


# -- people ---------------------------------------------------------------------------------

@bp.get("/users")
@needs("admin")
def list_users() -> Any:
    found, cursor = users.list_users(*page_args())
    return ok({"users": found, "nextCursor": cursor})


@bp.post("/users")
@needs("admin")
def create_user() -> Any:
    payload = json_body()
    user = users.create_user(payload.get("name"), payload.get("password"), payload.get("role"),
                             caller().name, client_address())
    return ok(users.user_dict(user), 201)


@bp.patch("/users/<name>")
@needs("admin")
def change_user(name: str) -> Any:
    """{"disabled": bool} and/or {"password": "..."}."""
    user = users.get_user(name)
    payload = json_body()
    unknown = set(payload) - {"disabled", "password"}
    if unknown:
        raise InputError(sorted(unknown)[0], "unknown field; one of disabled, password")
    if "password" in payload:
        users.set_password(user, users.check_password(payload["password"]), caller().name,
                           client_address())
    if "disabled" in payload:
        if not isinstance(payload["disabled"], bool):
            raise InputError("disabled", "must be true or false")
        users.set_disabled(user, payload["disabled"], caller().name, client_address())
    return ok(users.user_dict(users.get_user(name)))


@bp.get("/tokens")
@needs("admin")
def list_tokens() -> Any:
    found, cursor = tokens.list_tokens(*page_args())
    return ok({"tokens": found, "nextCursor": cursor})


@bp.post("/tokens")
@needs("admin")
def create_token() -> Any:
    """{"name", "scopes"}: the token is in the answer, once; only its hash is kept."""
    payload = json_body()
    token, value = tokens.create_token(payload.get("name"), payload.get("scopes"),
                                       caller().name, client_address())
    return ok({**tokens.token_dict(token), "token": value}, 201)


@bp.delete("/tokens/<name>")
@needs("admin")
def revoke_token(name: str) -> Any:
    if not tokens.revoke_token(name, caller().name, client_address()):
        raise NotFound(f"token: no active token named {name!r}")
    return ok({"revoked": True})


@bp.get("/audit")
@needs("admin")
def audit_log() -> Any:
    entries, next_cursor = audit.entries(*page_args())
    return ok({"entries": entries, "nextCursor": next_cursor})
