"""The orchestration job: run a project's agents and record what each did.

A job that ran every agent completes with the seed's OrchestrationJobResult. When some
agents failed, the job fails (so the queue's attempts and backoff apply) and its next
attempt runs only the agents that have not succeeded in this job yet; a later `retry`
job runs the ones that failed in an earlier job.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from synthbox.jobs.context import JobContext
from synthbox.jobs.errors import JobTimeout, UnrecoverableError
from synthbox.orchestration.agents import run_agent
from synthbox.orchestration.agents.base import AgentCall, AgentOutcome, AgentProcesses
from synthbox.orchestration.agents.repo_scan import checkout_dir
from synthbox.orchestration.models import Agent, AgentRun, Project, Run, Suggestion, Task
from synthbox.outbound import Network

REPO_SCAN = "repo-scan"  # the built-in agent of github_analysis jobs
NO_DEADLINE = 24 * 3600.0


class AgentsFailed(Exception):
    pass


def make_orchestrate(allow: Sequence[Network], data_path: Path,
                     processes: AgentProcesses, repository_roots: Sequence[Path] = ()) -> Any:
    def orchestrate(job: JobContext) -> dict[str, Any]:
        return Orchestration(job, allow, data_path, processes, repository_roots).run()

    return orchestrate


class Orchestration:
    def __init__(self, job: JobContext, allow: Sequence[Network], data_path: Path,
                 processes: AgentProcesses, repository_roots: Sequence[Path] = ()):
        self.job = job
        self.repository_roots = repository_roots
        self.processes = processes
        self.allow = allow
        self.data_path = data_path
        self.started = time.monotonic()
        self.deadline = self.started + (job.timeout or NO_DEADLINE)

    def run(self) -> dict[str, Any]:
        job = self.job
        run = Run.get_or_none(Run.id == job.id)
        project = Project.get_or_none(Project.id == int(job.data.get("projectId", 0)))
        if run is None or project is None:
            raise UnrecoverableError(f"projectId: no project {job.data.get('projectId')!r}")
        Run.update(state="running", started_at=time.time(), error=None).where(
            Run.id == run.id).execute()
        try:
            agents = self._agents(project, run)
            done = {a.agent_slug for a in AgentRun.select(AgentRun.agent_slug).where(
                (AgentRun.run_id == run.id) & (AgentRun.status == "succeeded"))}
            failed = []
            for agent in agents:
                if self.processes.stopping.is_set():
                    raise AgentsFailed("stopped: the instance is shutting down")
                if agent.slug in done:
                    continue  # succeeded in an earlier attempt of this job
                if self._run_one(project, run, agent).status == "succeeded":
                    done.add(agent.slug)
                else:
                    failed.append(agent.slug)
            result = self._result(run, len(agents), len(agents) - len(failed), failed)
        except JobTimeout:
            self._finish(run, "failed", None, f"timed out after {job.timeout:g} s")
            raise
        except Exception as exc:
            self._finish(run, "failed", None, str(exc) or type(exc).__name__)
            raise
        if failed:
            error = (f"{len(failed)} of {len(agents)} agents failed: {', '.join(failed)}")
            if self.job.cancelled.is_set():  # the job's own time ran out, not the agents'
                error = f"timed out after {self.job.timeout:g} s"
            self._finish(run, "failed", {**result, "error": error}, error)
            raise AgentsFailed(error)
        self._finish(run, "succeeded", result, None)
        return result

    def _agents(self, project: Project, run: Run) -> list[Agent]:
        data = self.job.data
        job_type = data.get("jobType", "batch")
        mine = Agent.select().where(Agent.project_id == project.id).order_by(Agent.slug)
        if job_type == "github_analysis":
            return [Agent(slug=REPO_SCAN, name="Repository scan", kind=REPO_SCAN, config="{}",
                          timeout=NO_DEADLINE)]
        if job_type == "single_agent":
            chosen = [a for a in mine if a.slug == data.get("agentSlug")]
            if not chosen:
                raise UnrecoverableError(f"agentSlug: no agent {data.get('agentSlug')!r}")
            return chosen
        if job_type == "retry":
            earlier = int(data.get("context", {}).get("jobId", 0))
            latest: dict[str, str] = {}
            for row in AgentRun.select().where(AgentRun.run_id == earlier).order_by(AgentRun.id):
                latest[row.agent_slug] = row.status
            again = {slug for slug, status in latest.items() if status != "succeeded"}
            built_in = [Agent(slug=REPO_SCAN, name="Repository scan", kind=REPO_SCAN,
                              config="{}", timeout=NO_DEADLINE)] if REPO_SCAN in again else []
            return built_in + [a for a in mine if a.slug in again]
        return [a for a in mine if a.enabled]

    def _run_one(self, project: Project, run: Run, agent: Agent) -> AgentOutcome:
        started_wall, started = time.time(), time.monotonic()
        call = AgentCall(
            slug=agent.slug, kind=agent.kind, config=json.loads(agent.config),
            context=self._context(project, run, agent),
            deadline=min(started + agent.timeout, self.deadline),
            timeout=min(agent.timeout, self.deadline - started), cancelled=self.job.cancelled,
            processes=self.processes, allow=self.allow, repository=project.repository,
            repository_roots=self.repository_roots,
            workdir=checkout_dir(self.data_path, project.id))
        outcome = run_agent(call)
        duration = int((time.monotonic() - started) * 1000)
        now = time.time()
        with Run._meta.database.atomic():
            AgentRun.create(run_id=run.id, attempt=self.job.attempt, agent_slug=agent.slug,
                            kind=agent.kind, status=outcome.status, duration_ms=duration,
                            output=outcome.output, error=outcome.error,
                            started_at=started_wall)
            for model, items in ((Task, outcome.tasks), (Suggestion, outcome.suggestions)):
                if items:
                    model.insert_many([{
                        "project_id": project.id, "run_id": run.id, "agent_slug": agent.slug,
                        "title": item["title"], "created_at": now,
                        "detail": json.dumps({k: v for k, v in item.items() if k != "title"})}
                        for item in items]).execute()
        return outcome

    def _context(self, project: Project, run: Run, agent: Agent) -> dict[str, Any]:
        data = self.job.data
        return {"jobId": str(run.id), "attempt": self.job.attempt,
                "project": {"id": str(project.id), "slug": project.slug, "name": project.name,
                            "repository": project.repository,
                            "settings": json.loads(project.settings)},
                "agent": {"slug": agent.slug, "name": agent.name, "kind": agent.kind},
                "triggeredBy": data.get("triggeredBy"), "jobType": data.get("jobType"),
                "userId": data.get("userId"), "context": data.get("context") or {}}

    def _result(self, run: Run, executed: int, succeeded: int,
                failed: list[str]) -> dict[str, Any]:
        return {"success": not failed, "jobId": str(run.id), "agentsExecuted": executed,
                "agentsSucceeded": succeeded, "agentsFailed": len(failed),
                "tasksCreated": Task.select().where(Task.run_id == run.id).count(),
                "suggestionsCreated": Suggestion.select().where(
                    Suggestion.run_id == run.id).count(),
                "error": None,
                "durationMs": int((time.monotonic() - self.started) * 1000)}

    @staticmethod
    def _finish(run: Run, state: str, result: dict[str, Any] | None, error: str | None
                ) -> None:
        Run.update(state=state, result=None if result is None else json.dumps(result),
                   error=error, finished_at=time.time()).where(Run.id == run.id).execute()
