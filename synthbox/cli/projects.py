"""`synthbox projects`, `synthbox agents`, `synthbox orchestrate`, and the hidden
`run-agent` that runs a `python` agent in a child process."""

from __future__ import annotations

import json
import shlex
import sys
import time
from importlib.metadata import entry_points
from typing import Any

import click

from synthbox.actors import CLI
from synthbox.cli.base import BadInput, with_engine
from synthbox.orchestration import projects, triggers
from synthbox.orchestration.agents.base import ENTRY_POINT_GROUP
from synthbox.services import get_orchestration_queue_service


def _json_option(raw: str | None, flag: str) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise BadInput(f"{flag}: must be JSON") from None


def _service(engine: Any) -> Any:
    return get_orchestration_queue_service(engine)


@click.group("projects")
def projects_group() -> None:
    """Projects whose agents the orchestration queue runs."""


@projects_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@with_engine
def list_projects_command(engine: Any, as_json: bool, **_: Any) -> None:
    found = projects.list_projects()
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    for project in found:
        click.echo(f"{project['slug']:<24} {project['name']:<30} "
                   f"{project['repository'] or '-'}")


@projects_group.command("create")
@click.argument("slug")
@click.option("--name", default=None, help="A display name (default: the slug).")
@click.option("--repository", default=None, help="A git URL or a local path to scan.")
@click.option("--settings", "settings_json", default=None, help="Settings as a JSON object.")
@with_engine
def create_project_command(engine: Any, slug: str, name: str | None, repository: str | None,
                           settings_json: str | None, **_: Any) -> None:
    """Create a project named SLUG."""
    payload: dict[str, Any] = {"slug": slug}
    for key, value in (("name", name), ("repository", repository),
                       ("settings", _json_option(settings_json, "--settings"))):
        if value is not None:
            payload[key] = value
    click.echo(projects.create_project(payload, actor=CLI,
                                       roots=engine.settings.repository_roots)["id"])


@projects_group.command("show")
@click.argument("project")
@with_engine
def show_project_command(engine: Any, project: str, **_: Any) -> None:
    """A project with its agents, schedules, hooks and latest runs, as JSON."""
    runs, _cursor = _service(engine).list_runs(project, 10)
    click.echo(json.dumps({**projects.project_dict(projects.find_project(project)),
                           "agents": projects.list_agents(project),
                           "schedules": triggers.list_schedules(project),
                           "hooks": triggers.list_hooks(project), "runs": runs}, indent=2))


@projects_group.command("delete")
@click.argument("project")
@click.option("--yes", is_flag=True, help="Do not ask.")
@with_engine
def delete_project_command(engine: Any, project: str, yes: bool, **_: Any) -> None:
    """Delete a project with its agents, triggers, runs, tasks and suggestions."""
    if not yes:
        click.confirm(f"Delete project {project} and everything it holds?", abort=True)
    projects.delete_project(project, engine.data_path, actor=CLI)
    click.echo(f"deleted {project}")


@click.group("agents")
def agents_group() -> None:
    """A project's agents: http, command, python or repo-scan."""


@agents_group.command("list")
@click.argument("project")
@click.option("--json", "as_json", is_flag=True)
@with_engine
def list_agents_command(engine: Any, project: str, as_json: bool, **_: Any) -> None:
    found = projects.list_agents(project)
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    for agent in found:
        state = "enabled" if agent["enabled"] else "disabled"
        click.echo(f"{agent['slug']:<24} {agent['kind']:<10} {state:<9} "
                   f"{agent['timeout']:g} s")


@agents_group.command("add")
@click.argument("project")
@click.argument("slug")
@click.option("--kind", type=click.Choice(["http", "command", "python", "repo-scan"]),
              required=True)


@click.option("--url", default=None, help="http: the URL to POST the context to.")
@click.option("--command", "command_line", default=None,
              help="command: the program and its arguments (split like a shell would, "
                   "but run without one).")


@click.option("--entry-point", default=None, help="python: a synthbox.agents entry point.")
@click.option("--agent-config", "config_json", default=None,
              help="The whole configuration as JSON.")


@click.option("--timeout", type=float, default=None, help="Seconds (default 300).")
@click.option("--name", default=None)
@with_engine
def add_agent_command(engine: Any, project: str, slug: str, kind: str, url: str | None,
                      command_line: str | None, entry_point: str | None,
                      config_json: str | None, timeout: float | None, name: str | None,
                      **_: Any) -> None:
    """Add agent SLUG to PROJECT."""
    config = _json_option(config_json, "--agent-config") or {}
    if not isinstance(config, dict):
        raise BadInput("--agent-config: must be a JSON object")
    if url is not None:
        config["url"] = url
    if command_line is not None:
        try:
            config["command"] = shlex.split(command_line)
        except ValueError as exc:
            raise BadInput(f"--command: {exc}") from None
    if entry_point is not None:
        config["entryPoint"] = entry_point
    payload: dict[str, Any] = {"slug": slug, "kind": kind, "config": config}
    if timeout is not None:
        payload["timeout"] = timeout
    if name is not None:
        payload["name"] = name
    click.echo(projects.create_agent(project, payload, actor=CLI)["id"])


@agents_group.command("remove")
@click.argument("project")
@click.argument("slug")
@with_engine
def remove_agent_command(engine: Any, project: str, slug: str, **_: Any) -> None:
    projects.delete_agent(project, slug, actor=CLI)
    click.echo(f"removed {slug}")


@agents_group.command("enable")
@click.argument("project")
@click.argument("slug")
@with_engine
def enable_agent_command(engine: Any, project: str, slug: str, **_: Any) -> None:
    projects.update_agent(project, slug, {"enabled": True}, actor=CLI)
    click.echo(f"enabled {slug}")


@agents_group.command("disable")
@click.argument("project")
@click.argument("slug")
@with_engine
def disable_agent_command(engine: Any, project: str, slug: str, **_: Any) -> None:
    projects.update_agent(project, slug, {"enabled": False}, actor=CLI)
    click.echo(f"disabled {slug}")


@click.command("orchestrate")
@click.argument("project")
@click.option("--agent", "agent_slug", default=None, help="Run this agent only.")
@click.option("--type", "job_type",
              type=click.Choice(["batch", "single_agent", "github_analysis", "retry"]),
              default=None, help="Default: batch, or single_agent with --agent.")


@click.option("--context", "context_json", default=None, help="A JSON object for the agents.")
@click.option("--priority", type=int, default=None, help="0-10, higher first.")
@click.option("--wait", is_flag=True, help="Wait for the run to finish (a serve instance "
                                           "runs it) and print its result.")


@with_engine
def orchestrate_command(engine: Any, project: str, agent_slug: str | None,
                        job_type: str | None, context_json: str | None,
                        priority: int | None, wait: bool, **_: Any) -> None:
    """Queue a manual run of PROJECT's agents; prints the job id."""
    payload: dict[str, Any] = {}
    for key, value in (("agentSlug", agent_slug), ("jobType", job_type),
                       ("context", _json_option(context_json, "--context")),
                       ("priority", priority)):
        if value is not None:
            payload[key] = value
    service = _service(engine)
    run = service.trigger(project, payload, "manual", actor=CLI)
    click.echo(run["jobId"])
    if not wait:
        return
    while True:  # until the job is final: a failed attempt may still be retried
        job = engine.find_job(int(run["jobId"]))
        if job is None or job["state"] in ("completed", "failed"):
            break
        time.sleep(0.5)
    run = service.get_run(project, run["jobId"])
    click.echo(json.dumps(run["result"] or {"success": False, "error": run["error"]},
                          indent=2))
    sys.exit(0 if run["state"] == "succeeded" else 1)


@click.command("run-agent", hidden=True)
@click.argument("entry_point")
def run_agent_command(entry_point: str) -> None:
    """Run a `synthbox.agents` entry point: the context on stdin, the report on stdout."""

    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == entry_point]
    if not found:
        click.echo(f"no {ENTRY_POINT_GROUP} entry point {entry_point!r}", err=True)
        sys.exit(2)
    function = found[0].load()
    context = json.loads(sys.stdin.read() or "{}")
    real_stdout, sys.stdout = sys.stdout, sys.stderr  # the agent's prints are its log
    try:
        report = function(context)
    finally:
        sys.stdout = real_stdout
    sys.stdout.write(json.dumps(report if report is not None else {}, default=str))
