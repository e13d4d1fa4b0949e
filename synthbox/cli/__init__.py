"""The `synthbox` command: a thin click layer over the same services as the API.

`synthbox` alone means `synthbox serve`. Every option also reads a `SYNTHBOX_*`
environment variable. Bad input exits with code 2 and one line on stderr.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from synthbox import __version__
from synthbox.actors import CLI
from synthbox.checks import parse_duration
from synthbox.cli import accounts, cluster, emails, projects, service, top
from synthbox.cli.base import (
    BadInput,
    DefaultGroup,
    resolve_settings,
    settings_options,
    with_engine,
)
from synthbox.errors import SynthBoxError
from synthbox.jobs import operations
from synthbox.jobs.errors import JobOptionError
from synthbox.jobs.options import flag_name
from synthbox.jobs.service import JOB_ID
from synthbox.records.models import STATES


@click.group(cls=DefaultGroup, context_settings={"auto_envvar_prefix": "SYNTHBOX",
                                                  "help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="synthbox")
def cli() -> None:
    """SynthBox: durable background jobs, workers, admin UI and API in one process."""


@cli.command()
@click.option("--workers-only", is_flag=True, default=False,
              help="Run the workers without the HTTP server.")
@settings_options
def serve(workers_only: bool, **options: Any) -> None:
    """Serve the API and run the queue workers (the default command)."""
    from synthbox.host.serve import serve as run

    settings = resolve_settings(options)
    if workers_only:
        settings.values["web"] = False
    sys.exit(run(settings))


# -- jobs ---------------------------------------------------------------------------------

@cli.group()
def jobs() -> None:
    """Add and inspect jobs."""


@jobs.command("add")
@click.argument("queue")
@click.argument("name")
@click.option("--data", default="{}", help="The job's data, as JSON.")
@click.option("--priority", type=int, default=0, help="0-10, higher runs first.")
@click.option("--delay", type=float, default=None, help="Seconds before the job may run.")
@click.option("--attempts", type=int, default=None, help="Attempts before it fails for good.")
@click.option("--job-id", "--key", "key", default=None,
              help="Deduplication key: adding it again returns "
              "the existing job.")
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
@with_engine
def add_job(engine: Any, queue: str, name: str, data: str, priority: int, delay: float | None,
            attempts: int | None, key: str | None, as_json: bool, **_: Any) -> None:
    """Add a job to QUEUE and print its id."""
    try:
        payload = json.loads(data)
    except json.JSONDecodeError as exc:
        raise BadInput(f"--data: not valid JSON ({exc.msg} at character {exc.pos})") from None
    opts: dict[str, Any] = {"priority": priority}
    if delay is not None:
        opts["delay"] = delay
    if attempts is not None:
        opts["attempts"] = attempts
    if key is not None:
        opts["key"] = key
    try:
        job = engine.service(queue).add(name, payload, **opts)
    except JobOptionError as exc:
        raise BadInput(f"{flag_name(exc.field)}: {exc.rule}" if exc.field != "name"
                       else str(exc)) from None
    click.echo(json.dumps(job, indent=2) if as_json else job["id"])


@jobs.command("show")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
@with_engine
def show_job(engine: Any, job_id: str, as_json: bool, **_: Any) -> None:
    """Show a job by its id."""
    if not JOB_ID.fullmatch(job_id):
        raise BadInput("ID: must be a job id (a whole number)")
    job = operations.find_job(engine, job_id)[1]
    if as_json:
        click.echo(json.dumps(job, indent=2))
        return
    for key in ("id", "queue", "name", "state", "priority", "attemptsMade", "attempts",
                "failedReason", "data", "returnvalue"):
        value = json.dumps(job[key]) if key in ("data", "returnvalue") else job[key]
        click.echo(f"{key:>13}: {value}")
    for error in job.get("errors", []):
        click.echo(f"{'attempt ' + str(error['attempt']):>13}: {error['error']}")


# -- queues -------------------------------------------------------------------------------

@cli.group("queues")
def queue_group() -> None:
    """Inspect and manage queues."""


STAT_KEYS = (*STATES, "total")


@queue_group.command("stats")
@click.argument("queue", required=False)
@click.option("--json", "as_json", is_flag=True, help="An object keyed by queue name.")
@with_engine
def queue_stats(engine: Any, queue: str | None, as_json: bool, **_: Any) -> None:
    """Job counts by state, for one queue or all."""
    names = [queue] if queue else list(engine.queues)
    stats = {name: engine.service(name).get_stats() for name in names}
    if as_json:
        click.echo(json.dumps({n: {k: s[k] for k in (*STAT_KEYS, "paused")}
                               for n, s in stats.items()}, indent=2))
        return
    click.echo(f"{'queue':<16}" + "".join(f"{k:>11}" for k in (*STAT_KEYS, "paused")))
    for name, s in stats.items():
        click.echo(f"{name:<16}" + "".join(f"{s[k]:>11}" for k in (*STAT_KEYS, "paused")))


@queue_group.command("retry-failed")
@click.argument("queue")
@with_engine
def retry_failed(engine: Any, queue: str, **_: Any) -> None:
    """Send every failed job of QUEUE back to waiting."""
    click.echo(f"retried {operations.retry_all_failed(engine, queue, CLI)} job(s)")


@queue_group.command("clean")
@click.argument("queue")
@click.option("--state", default="completed", show_default=True,
              type=click.Choice(["completed", "failed", "waiting", "delayed"]))
@click.option("--grace", default="0", show_default=True,
              help="Only jobs older than this (90, 30s, 15m, 24h, 7d).")
@click.option("--limit", type=int, default=100000, show_default=True)
@with_engine
def clean_queue(engine: Any, queue: str, state: str, grace: str, limit: int, **_: Any) -> None:
    """Delete jobs of QUEUE in a state, older than a grace period."""
    try:
        seconds = parse_duration(grace)
    except ValueError as exc:
        raise BadInput(f"--grace: {exc}") from None
    try:
        removed = operations.clean(engine, queue, state, seconds, CLI, limit)
    except JobOptionError as exc:
        raise BadInput(f"--{exc.field}: {exc.rule}") from None
    click.echo(f"removed {removed} {state} job(s)")


@queue_group.command("pause")
@click.argument("queue")
@with_engine
def pause_queue(engine: Any, queue: str, **_: Any) -> None:
    """Stop workers from taking new jobs from QUEUE."""
    operations.set_paused(engine, queue, True, CLI)
    click.echo(f"{queue} paused")


@queue_group.command("resume")
@click.argument("queue")
@with_engine
def resume_queue(engine: Any, queue: str, **_: Any) -> None:
    """Let workers take jobs from QUEUE again."""
    operations.set_paused(engine, queue, False, CLI)
    click.echo(f"{queue} resumed")


# -- checks -------------------------------------------------------------------------------

@cli.command()
def version() -> None:
    """Print the version, and how this copy runs (binary or Python)."""
    import platform

    how = "single binary" if getattr(sys, "frozen", False) else "Python package"
    click.echo(f"synthbox {__version__} ({how}, Python {platform.python_version()}, "
               f"{platform.system()} {platform.machine()})")


@cli.command()
@settings_options
def doctor(**options: Any) -> None:
    """Check the configured backends with a real job round trip."""
    from synthbox.host.doctor import run_doctor

    sys.exit(run_doctor(resolve_settings(options)))


@cli.command()
@click.option("--backend", type=click.Choice(["sqlite", "redis"]), default="sqlite",
              show_default=True, help="The queue transport to measure.")
@click.option("--jobs", "job_count", type=click.IntRange(1, 10_000_000), default=20000,
              show_default=True, help="How many no-op jobs to enqueue and drain.")
@click.option("--records-url", default="",
              help="Records in this PostgreSQL database instead of a temporary SQLite file "
                   "(give it a throwaway database: the bench's jobs stay there).")
@click.option("--served", is_flag=True,
              help="Measure a real `synthbox serve` over HTTP (enqueue, bulk, drain, pickup, "
                   "idle and loaded RSS) instead of the engine in this process.")
@click.option("--instances", type=click.IntRange(1, 64), default=1, show_default=True,
              help="With --served: more than 1 runs cluster mode (`synthbox start -i N`).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@settings_options
def bench(backend: str, job_count: int, records_url: str, served: bool, instances: int,
          as_json: bool, **options: Any) -> None:
    """Measure enqueue and drain rates, pickup latency and memory with the real engine."""
    from synthbox.bench.engine import run_bench

    if instances > 1 and not served:
        raise BadInput("instances: more than 1 needs --served (cluster mode is measured "
                       "over HTTP)")
    settings = resolve_settings(options)
    sys.exit(run_bench(settings, backend, job_count, as_json, records_url, served,
                       instances))


for group in (accounts.users_group, accounts.tokens_group, emails.email_group,
              projects.projects_group, projects.agents_group,
              projects.orchestrate_command, projects.run_agent_command,
              top.top_command, cluster.start_command, cluster.status_command,
              cluster.scale_command, cluster.reload_command, cluster.restart_command,
              cluster.stop_command, cluster.logs_command, cluster.monit_command,
              service.install_command, service.uninstall_command):
    cli.add_command(group)


def main(argv: list[str] | None = None) -> None:
    """Entry point: click, with every error as one line; its class says the exit code (2 for
    input to fix)."""
    try:
        cli.main(args=argv, prog_name="synthbox", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        message = exc.format_message().replace("\n", " ")
        click.echo(f"Error: {message}", err=True)
        sys.exit(exc.exit_code)
    except SynthBoxError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exc.exit_code)
    sys.exit(0)
