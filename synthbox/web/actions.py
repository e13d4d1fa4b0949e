"""Job and queue operations shared by the admin API and the UI: each checks its rule,
acts, and records who did it in the audit log."""

from __future__ import annotations

from typing import Any

from synthbox.accounts import audit
from synthbox.errors import Conflict, InputError, NotFound
from synthbox.jobs.engine import Engine
from synthbox.jobs.service import JOB_ID, QueueService

JOB_RULES = {"retry_job": "only a failed job can be retried",
             "promote": "only a delayed job can be promoted",
             "remove": "an active job cannot be removed"}


def find_job(engine: Engine, job_id: str) -> tuple[QueueService, dict[str, Any]]:
    found = engine.find_job(int(job_id)) if JOB_ID.fullmatch(job_id) else None
    if found is None:
        raise NotFound(f"job: no job {job_id!r}")
    return engine.service(found["queue"]), found


def job_action(engine: Engine, job_id: str, action: str, actor: str, address: str
               ) -> dict[str, Any] | None:
    """`retry_job`, `promote` or `remove` one job; the job afterwards (None if removed)."""
    service, found = find_job(engine, job_id)
    if not getattr(service, action)(found["id"]):
        raise Conflict(f"job: {JOB_RULES[action]}")
    audit.record(actor, f"job.{action}", f"job:{found['id']}", f"queue={found['queue']}",
                 address)
    return None if action == "remove" else service.get_job(found["id"])


def retry_with_data(engine: Engine, job_id: str, data: Any, actor: str,
                    address: str) -> dict[str, Any]:
    """Replace a failed job's data and retry it (admins: the data is trusted input)."""
    service, found = find_job(engine, job_id)
    if service.spec.internal:
        raise InputError("data", f"jobs of the {service.name} queue point at their own "
                                 "records; change the record instead")
    if not service.retry_with_data(found["id"], data):
        raise Conflict(f"job: {JOB_RULES['retry_job']}")
    audit.record(actor, "job.edit-retry", f"job:{found['id']}", f"queue={found['queue']}",
                 address)
    return service.get_job(found["id"]) or found


def bulk(engine: Engine, queue: str, action: str, state: str | None, search: str | None,
         dry_run: bool, actor: str, address: str) -> int:
    """Retry (failed jobs only) or delete the jobs a filter matches; a dry run counts."""
    service = engine.service(queue)
    if action == "retry":
        if state not in (None, "failed"):
            raise InputError("state", "only failed jobs can be retried")
        state = "failed"
    matching = service.count_matching(state, search)
    if dry_run:
        return matching
    done = service.retry_matching(search) if action == "retry" else service.delete_matching(
        state, search)
    audit.record(actor, f"jobs.bulk-{action}", f"queue:{queue}",
                 f"state={state} search={search!r} count={done}", address)
    return done


def set_paused(engine: Engine, queue: str, paused: bool, actor: str, address: str) -> None:
    service = engine.service(queue)
    service.pause() if paused else service.resume()
    audit.record(actor, "queue.pause" if paused else "queue.resume", f"queue:{queue}", "",
                 address)


def clean(engine: Engine, queue: str, state: str, grace: float, actor: str,
          address: str) -> int:
    removed = engine.service(queue).clean(state, grace)
    audit.record(actor, "queue.clean", f"queue:{queue}", f"state={state} removed={removed}",
                 address)
    return removed
