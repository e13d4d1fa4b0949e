"""Projects and their agents: create, read, update, delete, with every input checked."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from peewee import IntegrityError

from synthbox.accounts.audit import record_by
from synthbox.actors import SYSTEM, Actor
from synthbox.checks import (
    check_bool,
    check_http_url,
    check_json_object,
    check_known_fields,
    check_seconds,
    check_slug,
    check_string_map,
    check_text,
)
from synthbox.config import MASK
from synthbox.errors import Conflict, InputError, NotFound
from synthbox.jobs.service import JOB_ID, milliseconds
from synthbox.orchestration.agents.base import ENTRY_POINT_GROUP
from synthbox.orchestration.agents.repo_scan import check_repository_location, checkout_dir
from synthbox.orchestration.models import (
    AGENT_KINDS,
    Agent,
    AgentRun,
    Hook,
    HookDelivery,
    Project,
    Run,
    Schedule,
    Suggestion,
    Task,
)

PROJECT_FIELDS = ("slug", "name", "repository", "settings")
AGENT_FIELDS = ("slug", "name", "kind", "config", "enabled", "timeout")
DEFAULT_AGENT_TIMEOUT = 300.0
MOST_AGENT_TIMEOUT = 86400.0


def shown_url(url: str | None) -> str | None:
    """A URL as pages and the API show it: credentials and the query string masked (a
    repository URL with a token, an agent URL with ?key=...)."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        netloc = MASK + "@" + netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, netloc, parts.path, MASK if parts.query else "",
                       parts.fragment))


def project_dict(project: Project) -> dict[str, Any]:
    return {"id": str(project.id), "slug": project.slug, "name": project.name,
            "repository": shown_url(project.repository),
            "settings": json.loads(project.settings),
            "createdAt": milliseconds(project.created_at)}


def agent_dict(agent: Agent) -> dict[str, Any]:
    config = json.loads(agent.config)
    for secret_map in ("headers", "env"):
        if secret_map in config:
            config[secret_map] = {k: MASK for k in config[secret_map]}
    if "url" in config:
        config["url"] = shown_url(config["url"])
    return {"id": str(agent.id), "slug": agent.slug, "name": agent.name, "kind": agent.kind,
            "config": config, "enabled": agent.enabled, "timeout": agent.timeout,
            "createdAt": milliseconds(agent.created_at)}


def find_project(ref: str | int) -> Project:
    """A project by slug, or by id (slugs are never only digits)."""
    text = str(ref)
    project = (Project.get_or_none(Project.id == int(text)) if JOB_ID.fullmatch(text)
               else Project.get_or_none(Project.slug == text))
    if project is None:
        raise NotFound(f"project: no project {text!r}")
    return project


def find_agent(project: Project, slug: str) -> Agent:
    agent = Agent.get_or_none((Agent.project_id == project.id) & (Agent.slug == slug))
    if agent is None:
        raise NotFound(f"agent: no agent {slug!r} in project {project.slug!r}")
    return agent


def _repository(value: Any, roots: Sequence[Path]) -> str | None:
    """A git URL, or a local path under one of `roots` (the repository_roots setting; the
    scan checks again when it runs, links resolved)."""
    if value is None or value == "":
        return None
    checked = check_text(value, "repository", 2000)
    if checked.startswith("-"):
        raise InputError("repository", "must be a git URL or a path, not an option")
    check_repository_location(checked, roots)
    return checked


# -- projects ----------------------------------------------------------------------------

def list_projects() -> list[dict[str, Any]]:
    return [project_dict(p) for p in Project.select().order_by(Project.slug)]


def create_project(payload: dict[str, Any], actor: Actor = SYSTEM,
                   roots: Sequence[Path] = ()) -> dict[str, Any]:
    """A new project; a local repository path must lie under one of `roots`."""
    check_known_fields(payload, PROJECT_FIELDS)
    fields = {"slug": check_slug(payload.get("slug"), "slug"),
              "name": check_text(payload.get("name", payload.get("slug")), "name"),
              "repository": _repository(payload.get("repository"), roots),
              "settings": json.dumps(check_json_object(payload.get("settings"), "settings"))}
    try:
        project = Project.create(**fields, created_at=time.time())
    except IntegrityError:
        raise Conflict(f"slug: a project {fields['slug']!r} exists already") from None
    record_by(actor, "project.create", f"project:{project.slug}")
    return project_dict(project)


def update_project(ref: str, payload: dict[str, Any], actor: Actor = SYSTEM,
                   roots: Sequence[Path] = ()) -> dict[str, Any]:
    project = find_project(ref)
    check_known_fields(payload, PROJECT_FIELDS[1:])
    if "name" in payload:
        project.name = check_text(payload["name"], "name")
    if "repository" in payload and payload["repository"] != shown_url(project.repository):
        project.repository = _repository(payload["repository"], roots)
    if "settings" in payload:
        project.settings = json.dumps(check_json_object(payload["settings"], "settings"))
    project.save()
    record_by(actor, "project.update", f"project:{project.slug}")
    return project_dict(project)


def delete_project(ref: str, data_path: Path, actor: Actor = SYSTEM) -> None:
    """The project and everything it owns, its clone too; its queued jobs fail as "no
    project"."""
    project = find_project(ref)
    hooks = [h.id for h in Hook.select(Hook.id).where(Hook.project_id == project.id)]
    runs = Run.select(Run.id).where(Run.project_id == project.id)
    with Project._meta.database.atomic():
        if hooks:
            HookDelivery.delete().where(HookDelivery.hook_id.in_(hooks)).execute()
        AgentRun.delete().where(AgentRun.run_id.in_(runs)).execute()
        for model in (Agent, Schedule, Hook, Run, Task, Suggestion):
            model.delete().where(model.project_id == project.id).execute()
        project.delete_instance()
    record_by(actor, "project.delete", f"project:{project.slug}")
    shutil.rmtree(checkout_dir(data_path, project.id), ignore_errors=True)


# -- agents ------------------------------------------------------------------------------

def list_agents(ref: str) -> list[dict[str, Any]]:
    project = find_project(ref)
    return [agent_dict(a) for a in
            Agent.select().where(Agent.project_id == project.id).order_by(Agent.slug)]


def create_agent(ref: str, payload: dict[str, Any], actor: Actor = SYSTEM) -> dict[str, Any]:
    project = find_project(ref)
    check_known_fields(payload, AGENT_FIELDS)
    kind = payload.get("kind")
    if kind not in AGENT_KINDS:
        raise InputError("kind", f"must be one of {', '.join(AGENT_KINDS)}")
    slug = check_slug(payload.get("slug"), "slug")
    fields = {"slug": slug, "kind": kind,
              "name": check_text(payload.get("name", slug), "name"),
              "config": json.dumps(check_config(kind, payload.get("config"))),
              "enabled": check_bool(payload.get("enabled", True), "enabled"),
              "timeout": check_seconds(payload.get("timeout", DEFAULT_AGENT_TIMEOUT),
                                       "timeout", most=MOST_AGENT_TIMEOUT)}
    try:
        agent = Agent.create(project_id=project.id, created_at=time.time(), **fields)
    except IntegrityError:
        raise Conflict(f"slug: project {project.slug!r} has an agent {slug!r} already"
                       ) from None
    record_by(actor, "agent.create", f"agent:{project.slug}/{slug}")
    return agent_dict(agent)


def update_agent(ref: str, slug: str, payload: dict[str, Any], actor: Actor = SYSTEM
                 ) -> dict[str, Any]:
    project = find_project(ref)
    agent = find_agent(project, slug)
    check_known_fields(payload, AGENT_FIELDS[1:])
    if "kind" in payload and payload["kind"] != agent.kind:
        raise InputError("kind", "cannot change; create a new agent instead")
    if "name" in payload:
        agent.name = check_text(payload["name"], "name")
    if "config" in payload:
        agent.config = json.dumps(check_config(agent.kind, _unmask(
            payload["config"], json.loads(agent.config))))
    if "enabled" in payload:
        agent.enabled = check_bool(payload["enabled"], "enabled")
    if "timeout" in payload:
        agent.timeout = check_seconds(payload["timeout"], "timeout", most=MOST_AGENT_TIMEOUT)
    agent.save()
    record_by(actor, "agent.update", f"agent:{project.slug}/{slug}")
    return agent_dict(agent)


def delete_agent(ref: str, slug: str, actor: Actor = SYSTEM) -> None:
    project = find_project(ref)
    find_agent(project, slug).delete_instance()
    record_by(actor, "agent.delete", f"agent:{project.slug}/{slug}")


def _unmask(config: Any, stored: dict[str, Any]) -> Any:
    """A value sent back as the mask keeps the stored value."""
    if not isinstance(config, dict):
        return config
    config = dict(config)
    if stored.get("url") and config.get("url") == shown_url(stored["url"]):
        config["url"] = stored["url"]
    for secret_map in ("headers", "env"):
        new, old = config.get(secret_map), stored.get(secret_map) or {}
        if isinstance(new, dict):
            config[secret_map] = {k: old.get(k, v) if v == MASK else v for k, v in new.items()}
    return config


def check_config(kind: str, raw: Any) -> dict[str, Any]:
    """An agent's configuration, checked for its kind (see README, Orchestration)."""
    config = check_json_object(raw, "config")
    if kind == "http":
        check_known_fields(config, ("url", "headers"), "config.")
        url = check_http_url(config.get("url"), "config.url")
        return {"url": url, "headers": check_string_map(config.get("headers"),
                                                         "config.headers")}
    if kind == "command":
        check_known_fields(config, ("command", "shell", "env", "cwd"), "config.")
        shell = check_bool(config.get("shell", False), "config.shell")
        command = config.get("command")
        if shell:
            command = check_text(command, "config.command", 10000)
        elif not (isinstance(command, list) and 1 <= len(command) <= 200 and all(
                isinstance(a, str) and a and "\0" not in a for a in command)):
            raise InputError("config.command", "must be a list of arguments, the program "
                                               "first (or a line, with shell: true)")
        cwd = config.get("cwd")
        if cwd is not None and not (isinstance(cwd, str) and cwd.startswith("/")):
            raise InputError("config.cwd", "must be an absolute path")
        return {"command": command, "shell": shell, "cwd": cwd,
                "env": check_string_map(config.get("env"), "config.env")}
    if kind == "python":
        check_known_fields(config, ("entryPoint",), "config.")
        name = config.get("entryPoint")
        names = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
        if name not in names:
            raise InputError("config.entryPoint", f"must name an installed "
                                                  f"{ENTRY_POINT_GROUP} entry point; "
                                                  f"found: {', '.join(sorted(names)) or 'none'}")
        return {"entryPoint": name}
    check_known_fields(config, ("largeFileBytes",), "config.")
    size = config.get("largeFileBytes", 1_000_000)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise InputError("config.largeFileBytes", "must be a whole number of bytes above 0")
    return {"largeFileBytes": size}
