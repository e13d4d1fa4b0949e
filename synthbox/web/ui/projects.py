"""Project pages: agents, schedules, webhooks (the secret shown once), runs with their
agent runs, tasks and suggestions, and "run now"."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, g, redirect, request, url_for

from synthbox.errors import InputError
from synthbox.orchestration import projects, triggers
from synthbox.orchestration.models import AGENT_KINDS, JOB_TYPES, Suggestion, Task
from synthbox.orchestration.service import OrchestrationService
from synthbox.web.ui.base import action, actor, back, form_json, page, pretty, ui_page

bp = Blueprint("ui_projects", __name__)


def orchestration() -> OrchestrationService:
    return current_app.config["SYNTHBOX_ORCHESTRATION"]


def _fields(*names: str) -> dict[str, Any]:
    """The named form fields that were filled in."""
    return {name: request.form[name].strip() for name in names
            if request.form.get(name, "").strip()}


@bp.get("/projects")
@ui_page()
def projects_page() -> Any:
    return page("ui/projects.html", projects=projects.list_projects())


@bp.post("/projects")
@ui_page("admin")
@action
def create_project() -> Any:
    payload: dict[str, Any] = _fields("slug", "name", "repository")
    settings = form_json("settings")
    if settings is not None:
        payload["settings"] = settings
    made = projects.create_project(
        payload, actor=actor(),
        roots=current_app.config["SYNTHBOX_ENGINE"].settings.repository_roots)
    flash(f"Project {made['slug']} created.", "ok")
    return redirect(url_for("ui_projects.project_page", project=made["slug"]))


def _project_page(project: str, new_hook: dict[str, Any] | None = None) -> Any:
    found = projects.project_dict(projects.find_project(project))
    runs, _ = orchestration().list_runs(project, 20)
    tasks, _ = orchestration().list_items(Task, project, 50)
    suggestions, _ = orchestration().list_items(Suggestion, project, 50)
    body, status = page("ui/project.html", project=found,
                        agents=projects.list_agents(project),
                        schedules=triggers.list_schedules(project),
                        hooks=triggers.list_hooks(project), runs=runs, tasks=tasks,
                        suggestions=suggestions, kinds=AGENT_KINDS, job_types=JOB_TYPES,
                        new_hook=new_hook,
                        back_to=url_for("ui_projects.project_page", project=found["slug"]))
    response = current_app.make_response((body, status))
    if new_hook is not None:
        response.headers["Cache-Control"] = "no-store"  # it holds the secret
    return response


@bp.get("/projects/<project>")
@ui_page()
def project_page(project: str) -> Any:
    return _project_page(project)


@bp.post("/projects/<project>/delete")
@ui_page("admin")
@action
def delete_project(project: str) -> Any:
    projects.delete_project(project, current_app.config["SYNTHBOX_ENGINE"].data_path, actor=actor())
    flash(f"Project {project} deleted.", "ok")
    return redirect(url_for("ui_projects.projects_page"))


@bp.post("/projects/<project>/run")
@ui_page("orchestration:trigger")
@action
def run_now(project: str) -> Any:
    payload = _fields("jobType", "agentSlug")
    run = orchestration().trigger(project, payload, "manual", user_id=g.user.name, actor=actor())
    flash(f"Run {run['jobId']} is queued.", "ok")
    return redirect(url_for("ui_projects.run_page", project=project, run_id=run["jobId"]))


@bp.post("/projects/<project>/agents")
@ui_page("admin")
@action
def create_agent(project: str) -> Any:
    payload: dict[str, Any] = _fields("slug", "name", "kind")
    payload["config"] = form_json("config") or {}
    timeout = request.form.get("timeout", "").strip()
    if timeout:
        try:
            payload["timeout"] = float(timeout)
        except ValueError:
            raise InputError("timeout", "must be a number of seconds") from None
    made = projects.create_agent(project, payload, actor=actor())
    flash(f"Agent {made['slug']} added.", "ok")
    return back(url_for("ui_projects.project_page", project=project))


@bp.post("/projects/<project>/agents/<slug>/toggle")
@ui_page("admin")
@action
def toggle_agent(project: str, slug: str) -> Any:
    agent = projects.find_agent(projects.find_project(project), slug)
    projects.update_agent(project, slug, {"enabled": not agent.enabled}, actor=actor())
    return back(url_for("ui_projects.project_page", project=project))


@bp.post("/projects/<project>/agents/<slug>/delete")
@ui_page("admin")
@action
def delete_agent(project: str, slug: str) -> Any:
    projects.delete_agent(project, slug, actor=actor())
    flash(f"Agent {slug} removed.", "ok")
    return back(url_for("ui_projects.project_page", project=project))


@bp.post("/projects/<project>/schedules")
@ui_page("admin")
@action
def create_schedule(project: str) -> Any:
    made = triggers.save_schedule(project, _fields("cron", "timezone", "jobType",
                                                   "agentSlug"), actor=actor())
    flash(f"Schedule {made['cron']} added.", "ok")
    return back(url_for("ui_projects.project_page", project=project))


@bp.post("/projects/<project>/schedules/<schedule_id>/delete")
@ui_page("admin")
@action
def delete_schedule(project: str, schedule_id: str) -> Any:
    triggers.delete_schedule(project, schedule_id, actor=actor())
    return back(url_for("ui_projects.project_page", project=project))


@bp.post("/projects/<project>/hooks")
@ui_page("admin")
@action
def create_hook(project: str) -> Any:
    """The secret is shown on the page this answers, once; it is never shown again."""
    made = triggers.create_hook(project, _fields("slug", "jobType", "agentSlug"), actor=actor())
    return _project_page(project, made)


@bp.post("/projects/<project>/hooks/<slug>/delete")
@ui_page("admin")
@action
def delete_hook(project: str, slug: str) -> Any:
    triggers.delete_hook(project, slug, actor=actor())
    return back(url_for("ui_projects.project_page", project=project))


@bp.get("/projects/<project>/runs/<run_id>")
@ui_page()
def run_page(project: str, run_id: str) -> Any:
    run = orchestration().get_run(project, run_id)
    return page("ui/run.html", project=project, run=run,
                result=None if run["result"] is None else pretty(run["result"]))
