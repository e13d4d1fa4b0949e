"""OrchestrationService: trigger a project's agents, read its runs; the seed's
OrchestrationQueueService (add_job, add_high_priority_job, get_stats, ...).

A trigger writes the job and its run record in one transaction; the job's data is the
seed's `{projectId, triggeredBy, userId, priority, jobType, agentSlug, context}`.
"""

from __future__ import annotations

import json
import time
from typing import Any

from synthbox.accounts.audit import record_by
from synthbox.actors import Actor
from synthbox.checks import check_json_object, check_known_fields, check_whole
from synthbox.errors import Conflict, InputError, NotFound, UnknownReference
from synthbox.jobs.options import HIGH_PRIORITY
from synthbox.jobs.service import (
    JOB_ID,
    LegacyServiceMethods,
    QueueService,
    milliseconds,
)
from synthbox.orchestration.models import (
    JOB_TYPES,
    TRIGGERS,
    Agent,
    AgentRun,
    Project,
    Run,
    Suggestion,
    Task,
)
from synthbox.orchestration.projects import find_project

ORCHESTRATION_QUEUE = "orchestration"
ORCHESTRATE = "orchestrate"  # the job name
REQUEST_FIELDS = ("jobType", "agentSlug", "context", "priority", "userId")


def check_request(project: Project, payload: dict[str, Any], prefix: str = ""
                  ) -> dict[str, Any]:
    """What to run, checked against the project: {jobType, agentSlug, context, priority}."""
    agent_slug = payload.get("agentSlug")
    job_type = payload.get("jobType", "single_agent" if agent_slug else "batch")
    if job_type not in JOB_TYPES:
        raise InputError(prefix + "jobType", f"must be one of {', '.join(JOB_TYPES)}")
    context = check_json_object(payload.get("context"), prefix + "context")
    priority = check_whole(payload.get("priority", 0), prefix + "priority", 0, 10)
    if job_type == "single_agent":
        if not isinstance(agent_slug, str) or not agent_slug:
            raise InputError(prefix + "agentSlug", "is required for jobType single_agent")
        if not Agent.select().where(
                (Agent.project_id == project.id) & (Agent.slug == agent_slug)).exists():
            raise UnknownReference(prefix + "agentSlug", f"no agent {agent_slug!r} in project "
                                                         f"{project.slug!r}")
    elif agent_slug is not None:
        raise InputError(prefix + "agentSlug", "only for jobType single_agent")
    if job_type == "github_analysis" and not project.repository:
        raise Conflict(f"{prefix}jobType: github_analysis needs a repository; project "
                       f"{project.slug!r} has none", prefix + "jobType")
    if job_type == "retry":
        earlier = context.get("jobId")
        if isinstance(earlier, bool) or not isinstance(earlier, str | int) or \
                not JOB_ID.fullmatch(str(earlier)):
            raise InputError(prefix + "context.jobId", "must be the id of an earlier job")
        run = Run.get_or_none(Run.id == int(earlier))
        if run is None or run.project_id != project.id:
            raise UnknownReference(prefix + "context.jobId", f"no earlier job {earlier} of "
                                                             f"project {project.slug!r}")
    return {"jobType": job_type, "agentSlug": agent_slug, "context": context,
            "priority": priority}


def run_dict(run: Run) -> dict[str, Any]:
    return {"id": str(run.id), "jobId": str(run.id), "projectId": str(run.project_id),
            "triggeredBy": run.triggered_by, "jobType": run.job_type,
            "agentSlug": run.agent_slug, "userId": run.user_id, "state": run.state,
            "result": None if run.result is None else json.loads(run.result),
            "error": run.error, "createdAt": milliseconds(run.created_at),
            "startedAt": milliseconds(run.started_at), "finishedAt": milliseconds(run.finished_at)}


def agent_run_dict(row: AgentRun) -> dict[str, Any]:
    return {"id": str(row.id), "attempt": row.attempt, "agentSlug": row.agent_slug,
            "kind": row.kind, "status": row.status, "durationMs": row.duration_ms,
            "output": row.output, "error": row.error, "startedAt": milliseconds(row.started_at)}


def item_dict(row: Task | Suggestion) -> dict[str, Any]:
    return {"id": str(row.id), "runId": str(row.run_id), "agentSlug": row.agent_slug,
            "title": row.title, "detail": json.loads(row.detail),
            "createdAt": milliseconds(row.created_at)}


class OrchestrationService(LegacyServiceMethods):
    def __init__(self, queue: QueueService):
        self.queue = queue
        self.db = queue.store.db

    # -- triggering -----------------------------------------------------------------------

    def trigger(self, project_ref: str | int, payload: dict[str, Any], triggered_by: str,
                user_id: str | None = None, job_key: str | None = None,
                announce: bool = True, actor: Actor | None = None) -> dict[str, Any]:
        """Queue a run of `project_ref`; the run, with its `jobId`. A `job_key` given twice
        queues once (webhook deliveries, cron times). A run someone asked for (`actor`) is
        in the audit log."""
        if triggered_by not in TRIGGERS:
            raise InputError("triggeredBy", f"must be one of {', '.join(TRIGGERS)}")
        project = find_project(project_ref)
        check_known_fields(payload, REQUEST_FIELDS)
        request = check_request(project, payload)
        user = payload.get("userId", user_id)
        if user is not None and not isinstance(user, str | int):
            raise InputError("userId", "must be a string")
        data = {"projectId": str(project.id), "triggeredBy": triggered_by,
                "userId": None if user is None else str(user), **request}
        now = time.time()
        with self.db.atomic():
            job = self.queue.add_bulk([{"name": ORCHESTRATE, "data": data,
                                        "priority": request["priority"], "key": job_key}],
                                      announce=False)[0]
            run, _ = Run.get_or_create(id=int(job["id"]), defaults={
                "project_id": project.id, "triggered_by": triggered_by,
                "job_type": request["jobType"], "agent_slug": request["agentSlug"],
                "user_id": data["userId"], "created_at": now})
        if announce:
            self.queue.announce([now])
        if actor is not None:
            record_by(actor, "orchestration.trigger", f"job:{run.id}")
        return run_dict(run)

    # -- the seed's OrchestrationQueueService --------------------------------------------

    def add_job(self, data: dict[str, Any]) -> dict[str, Any]:
        """`{projectId, triggeredBy, jobType, agentSlug?, context?, priority?, userId?}`."""
        data = dict(data)
        project = data.pop("projectId", None)
        if project is None:
            raise InputError("projectId", "is required")
        return self.trigger(project, data, data.pop("triggeredBy", "api"))

    def add_high_priority_job(self, data: dict[str, Any]) -> dict[str, Any]:
        return self.add_job({**data, "priority": HIGH_PRIORITY})


    # -- reading --------------------------------------------------------------------------

    def list_runs(self, project_ref: str, limit: int = 50, cursor: int | None = None
                  ) -> tuple[list[dict[str, Any]], str | None]:
        project = find_project(project_ref)
        query = Run.select().where(Run.project_id == project.id)
        return _page(query, Run, run_dict, limit, cursor)

    def get_run(self, project_ref: str, run_id: str) -> dict[str, Any]:
        project = find_project(project_ref)
        run = Run.get_or_none(Run.id == int(run_id)) if JOB_ID.fullmatch(run_id) else None
        if run is None or run.project_id != project.id:
            raise NotFound(f"run: no run {run_id!r} in project {project.slug!r}")
        agent_runs = AgentRun.select().where(AgentRun.run_id == run.id).order_by(AgentRun.id)
        return {**run_dict(run), "agentRuns": [agent_run_dict(a) for a in agent_runs],
                "tasks": [item_dict(t) for t in Task.select().where(Task.run_id == run.id)],
                "suggestions": [item_dict(s) for s in
                                Suggestion.select().where(Suggestion.run_id == run.id)]}

    def list_items(self, model: type[Task] | type[Suggestion], project_ref: str,
                   limit: int = 50, cursor: int | None = None
                   ) -> tuple[list[dict[str, Any]], str | None]:
        """A project's tasks or suggestions, newest first."""
        project = find_project(project_ref)
        return _page(model.select().where(model.project_id == project.id), model,
                     item_dict, limit, cursor)


def _page(query: Any, model: Any, render: Any, limit: int, cursor: int | None
          ) -> tuple[list[dict[str, Any]], str | None]:
    if cursor is not None:
        query = query.where(model.id < cursor)
    rows = list(query.order_by(model.id.desc()).limit(limit + 1))
    page = [render(r) for r in rows[:limit]]
    return page, (page[-1]["id"] if len(rows) > limit else None)
