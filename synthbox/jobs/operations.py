"""What an operator does to jobs and queues, one path for the API, the UI and the CLI: each
operation checks its rule, acts, and reports who did it to the engine's recorder (the audit
log, wired in by synthbox/app.py)."""

from __future__ import annotations

from typing import Any

from synthbox.actors import Actor
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


def job_action(engine: Engine, job_id: str, action: str, actor: Actor
               ) -> dict[str, Any] | None:
    """`retry_job`, `promote` or `remove` one job; the job afterwards (None if removed)."""
    service, found = find_job(engine, job_id)
    if not getattr(service, action)(found["id"]):
        raise Conflict(f"job: {JOB_RULES[action]}")
    engine.record(actor, f"job.{action}", f"job:{found['id']}", f"queue={found['queue']}")
    return None if action == "remove" else service.get_job(found["id"])


def retry_with_data(engine: Engine, job_id: str, data: Any, actor: Actor) -> dict[str, Any]:
    """Replace a failed job's data and retry it (admins: the data is trusted input)."""
    service, found = find_job(engine, job_id)
    if service.spec.internal:
        raise InputError("data", f"jobs of the {service.name} queue point at their own "
                                 "records; change the record instead")
    if not service.retry_with_data(found["id"], data):
        raise Conflict(f"job: {JOB_RULES['retry_job']}")
    engine.record(actor, "job.edit-retry", f"job:{found['id']}", f"queue={found['queue']}")
    return service.get_job(found["id"]) or found


def bulk(engine: Engine, queue: str, action: str, state: str | None, search: str | None,
         dry_run: bool, actor: Actor) -> int:
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
    engine.record(actor, f"jobs.bulk-{action}", f"queue:{queue}",
                  f"state={state} search={search!r} count={done}")
    return done


def retry_all_failed(engine: Engine, queue: str, actor: Actor) -> int:
    count = engine.service(queue).retry_all_failed()
    engine.record(actor, "queue.retry-failed", f"queue:{queue}", f"count={count}")
    return count


def set_paused(engine: Engine, queue: str, paused: bool, actor: Actor) -> None:
    service = engine.service(queue)
    service.pause() if paused else service.resume()
    engine.record(actor, "queue.pause" if paused else "queue.resume", f"queue:{queue}", "")


def clean(engine: Engine, queue: str, state: str, grace: float, actor: Actor,
          limit: int = 10000) -> int:
    removed = engine.service(queue).clean(state, grace, limit)
    engine.record(actor, "queue.clean", f"queue:{queue}", f"state={state} removed={removed}")
    return removed
