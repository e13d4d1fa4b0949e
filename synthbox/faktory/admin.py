"""Faktory's administrative commands over SynthBox's own operations: INFO (queue sizes and
totals), FLUSH, QUEUE PAUSE/RESUME/REMOVE and MUTATE. They reach only `remote` queues: the
queues whose jobs run in SynthBox are managed through its own API."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

from synthbox import __version__
from synthbox.actors import Actor
from synthbox.errors import InputError
from synthbox.faktory.jobs import SAME_JOB, RemoteJobs
from synthbox.faktory.workers import WorkerRegistry
from synthbox.jobs.engine import Engine

STARTED = time.time()
# MUTATE's targets as the job states SynthBox keeps: retries are failed attempts waiting
# for their next, scheduled jobs wait for their time, dead jobs failed for good
_TARGETS = {"retries": "status='waiting' AND run_at>? AND attempts_made>0",
            "scheduled": "status='waiting' AND run_at>? AND attempts_made=0",
            "dead": "status='failed'"}
_COMMANDS = ("clear", "discard", "kill", "requeue")


def remote_queues(engine: Engine) -> list[str]:
    return [name for name, handle in list(engine.queues.items())
            if not handle.service.spec.local_consumer]


def info(engine: Engine, jobs: RemoteJobs, workers: WorkerRegistry) -> dict[str, Any]:
    """INFO: the remote queues' sizes and totals, as Faktory reports its own."""
    totals = engine.store.tallies.totals()
    names = remote_queues(engine)
    sizes = {name: engine.service(name).get_stats()["waiting"] for name in names}
    return {
        "faktory": {"total_failures": int(sum(totals.get(n, {}).get("failed", 0)
                                              for n in names)),
                    "total_processed": int(sum(totals.get(n, {}).get("completed", 0)
                                               + totals.get(n, {}).get("failed", 0)
                                               for n in names)),
                    "total_enqueued": sum(sizes.values()), "total_queues": len(names),
                    "queues": sizes, "tasks": {}},
        "server_utc_time": time.strftime("%H:%M:%S UTC", time.gmtime()),
        "server": {"description": "SynthBox", "faktory_version": f"synthbox-{__version__}",
                   "uptime": int(time.time() - STARTED),
                   "connections": len(workers.listing()), "command_count": jobs.pushed,
                   "used_memory_mb": 0},
    }


def flush(engine: Engine, actor: Actor) -> None:
    """FLUSH: every job of every remote queue that no worker holds is deleted."""
    removed = sum(engine.service(name).delete_matching(None, None)
                  for name in remote_queues(engine))
    engine.record(actor, "faktory.flush", "queues:remote", f"deleted={removed}")


def queue_command(engine: Engine, rest: str, actor: Actor) -> None:
    """QUEUE PAUSE|RESUME|REMOVE name... (`*`: every remote queue)."""
    action, _, names_text = rest.partition(" ")
    names = names_text.split()
    if action not in ("PAUSE", "RESUME", "REMOVE") or not names:
        raise InputError("QUEUE", "must be QUEUE PAUSE|RESUME|REMOVE followed by queue names")
    remote = remote_queues(engine)
    chosen = remote if names == ["*"] else names
    for name in chosen:
        if name not in remote:
            raise InputError("queue", f"{name!r} is not a remote queue")
    for name in chosen:
        service = engine.service(name)
        if action == "PAUSE":
            service.pause()
        elif action == "RESUME":
            service.resume()
        else:  # its waiting and delayed jobs go; the queue stays defined
            service.clean("waiting", 0, 1_000_000)
            service.clean("delayed", 0, 1_000_000)
        engine.record(actor, f"queue.{action.lower()}", f"queue:{name}", "faktory")


def _matching_ids(engine: Engine, target: str, filters: Mapping[str, Any]) -> list[int]:
    remote = remote_queues(engine)
    if not remote:
        return []
    now = time.time()
    where = f"queue IN ({','.join('?' * len(remote))}) AND {_TARGETS[target]}"
    params: list[Any] = [*remote, *([] if target == "dead" else [now])]
    jobtype = filters.get("jobtype")
    if jobtype is not None:
        where += " AND name=?"
        params.append(str(jobtype))
    rows = engine.store.execute(
        f"SELECT j.id, j.data, f.jid FROM job j LEFT JOIN faktory_job f ON {SAME_JOB} "
        f"WHERE {where.replace('queue', 'j.queue').replace('status', 'j.status')}",
        params).fetchall()
    jids = filters.get("jids")
    pattern = filters.get("regexp") or filters.get("pattern")
    try:
        compiled = re.compile(str(pattern)) if pattern else None
    except re.error:
        raise InputError("filter.regexp", "must be a regular expression") from None
    return [job_id for job_id, data, jid in rows
            if (not jids or (jid or str(job_id)) in jids)
            and (compiled is None or compiled.search(data))]


def mutate(engine: Engine, body: Any, actor: Actor) -> None:
    """MUTATE {"cmd", "target", "filter"}: clear or discard deletes, kill fails for good,
    requeue makes the jobs due now (a dead one with fresh attempts)."""
    if not isinstance(body, Mapping):
        raise InputError("MUTATE", "must be a JSON object")
    cmd, target = body.get("cmd"), body.get("target")
    if cmd not in _COMMANDS:
        raise InputError("cmd", f"must be one of {', '.join(_COMMANDS)}")
    if target not in _TARGETS:
        raise InputError("target", f"must be one of {', '.join(_TARGETS)}")
    filters = body.get("filter") or {}
    if not isinstance(filters, Mapping):
        raise InputError("filter", "must be a JSON object")
    ids = _matching_ids(engine, target, filters)
    store = engine.store
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        marks = ",".join("?" * len(chunk))
        if cmd in ("clear", "discard"):
            store.delete_jobs(chunk)
        elif cmd == "kill" and target != "dead":
            store.execute(f"UPDATE job SET status='failed', finished_at=?, failed_reason="
                          f"'killed by MUTATE' WHERE status='waiting' AND id IN ({marks})",
                          (time.time(), *chunk))
        elif cmd == "requeue":
            store.execute(f"UPDATE job SET status='waiting', run_at=?, finished_at=NULL, "
                          f"attempts_made=CASE WHEN status='failed' THEN 0 ELSE attempts_made "
                          f"END WHERE status IN ('waiting', 'failed') AND id IN ({marks})",
                          (time.time(), *chunk))
    engine.record(actor, f"faktory.mutate.{cmd}", f"jobs:{target}", f"jobs={len(ids)}")
