"""/api/v1/projects: projects, agents, schedules, hooks, runs, tasks and suggestions;
/api/v1/hooks: webhook deliveries (signed, not Bearer).

Reading needs `read`; triggering `orchestration:trigger`; changing projects and their
agents and triggers needs `admin` (a `command` agent runs programs on this host)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, request

from synthbox.orchestration import projects, triggers
from synthbox.orchestration.models import Suggestion, Task
from synthbox.orchestration.service import OrchestrationService
from synthbox.web.api.auth import acting, authenticate_api_request, caller, needs
from synthbox.web.errors import ok
from synthbox.web.requests import json_body, page_args

bp = Blueprint("projects_api", __name__, url_prefix="/api/v1/projects")
bp.before_request(authenticate_api_request)
hooks_bp = Blueprint("hooks_api", __name__, url_prefix="/api/v1/hooks")


def orchestration() -> OrchestrationService:
    return current_app.config["SYNTHBOX_ORCHESTRATION"]


def _roots() -> Any:
    return current_app.config["SYNTHBOX_ENGINE"].settings.repository_roots


def _page_args() -> tuple[int, int | None]:
    return page_args()


@bp.get("")
@needs("read")
def list_projects() -> Any:
    return ok(projects.list_projects())


@bp.post("")
@needs("admin")
def create_project() -> Any:
    created = projects.create_project(json_body(), actor=acting(), roots=_roots())
    return ok(created, 201)


@bp.get("/<project>")
@needs("read")
def get_project(project: str) -> Any:
    return ok(projects.project_dict(projects.find_project(project)))


@bp.patch("/<project>")
@needs("admin")
def update_project(project: str) -> Any:
    changed = projects.update_project(project, json_body(), actor=acting(), roots=_roots())
    return ok(changed)


@bp.delete("/<project>")
@needs("admin")
def delete_project(project: str) -> Any:
    projects.delete_project(project, current_app.config["SYNTHBOX_ENGINE"].data_path,
                            actor=acting())
    return ok({"deleted": True})


# -- agents ------------------------------------------------------------------------------

@bp.get("/<project>/agents")
@needs("read")
def list_agents(project: str) -> Any:
    return ok(projects.list_agents(project))


@bp.post("/<project>/agents")
@needs("admin")
def create_agent(project: str) -> Any:
    created = projects.create_agent(project, json_body(), actor=acting())
    return ok(created, 201)


@bp.patch("/<project>/agents/<slug>")
@needs("admin")
def update_agent(project: str, slug: str) -> Any:
    changed = projects.update_agent(project, slug, json_body(), actor=acting())
    return ok(changed)


@bp.delete("/<project>/agents/<slug>")
@needs("admin")
def delete_agent(project: str, slug: str) -> Any:
    projects.delete_agent(project, slug, actor=acting())
    return ok({"deleted": True})


# -- schedules and hooks ------------------------------------------------------------------

@bp.get("/<project>/schedules")
@needs("read")
def list_schedules(project: str) -> Any:
    return ok(triggers.list_schedules(project))


@bp.post("/<project>/schedules")
@needs("admin")
def create_schedule(project: str) -> Any:
    created = triggers.save_schedule(project, json_body(), actor=acting())
    return ok(created, 201)


@bp.patch("/<project>/schedules/<schedule_id>")
@needs("admin")
def update_schedule(project: str, schedule_id: str) -> Any:
    changed = triggers.save_schedule(project, json_body(), schedule_id, actor=acting())
    return ok(changed)


@bp.delete("/<project>/schedules/<schedule_id>")
@needs("admin")
def delete_schedule(project: str, schedule_id: str) -> Any:
    triggers.delete_schedule(project, schedule_id, actor=acting())
    return ok({"deleted": True})


@bp.get("/<project>/hooks")
@needs("read")
def list_hooks(project: str) -> Any:
    return ok(triggers.list_hooks(project))


@bp.post("/<project>/hooks")
@needs("admin")
def create_hook(project: str) -> Any:
    created = triggers.create_hook(project, json_body(), actor=acting())
    return ok(created, 201)


@bp.patch("/<project>/hooks/<slug>")
@needs("admin")
def update_hook(project: str, slug: str) -> Any:
    changed = triggers.update_hook(project, slug, json_body(), actor=acting())
    return ok(changed)


@bp.delete("/<project>/hooks/<slug>")
@needs("admin")
def delete_hook(project: str, slug: str) -> Any:
    triggers.delete_hook(project, slug, actor=acting())
    return ok({"deleted": True})


# -- runs ---------------------------------------------------------------------------------

@bp.post("/<project>/orchestrations")
@needs("orchestration:trigger")
def trigger(project: str) -> Any:
    """{"jobType", "agentSlug", "context", "priority", "userId"}: queue a run."""
    principal = caller()
    run = orchestration().trigger(project, json_body(), "api",
                                  user_id=str(principal.user_id or principal.name), actor=acting())
    return ok(run, 201)


@bp.get("/<project>/runs")
@needs("read")
def list_runs(project: str) -> Any:
    runs, cursor = orchestration().list_runs(project, *_page_args())
    return ok({"runs": runs, "nextCursor": cursor})


@bp.get("/<project>/runs/<run_id>")
@needs("read")
def get_run(project: str, run_id: str) -> Any:
    return ok(orchestration().get_run(project, run_id))


@bp.get("/<project>/tasks")
@needs("read")
def list_tasks(project: str) -> Any:
    items, cursor = orchestration().list_items(Task, project, *_page_args())
    return ok({"tasks": items, "nextCursor": cursor})


@bp.get("/<project>/suggestions")
@needs("read")
def list_suggestions(project: str) -> Any:
    items, cursor = orchestration().list_items(Suggestion, project, *_page_args())
    return ok({"suggestions": items, "nextCursor": cursor})


# -- webhooks -----------------------------------------------------------------------------

@hooks_bp.post("/<project>/<hook>")
def receive(project: str, hook: str) -> Any:
    """A signed delivery (public: the signature is the credential)."""
    headers = {name.lower(): value for name, value in request.headers.items()}
    answer = triggers.receive_delivery(orchestration(), project, hook, headers,
                                       request.get_data(cache=True))
    return ok(answer)
