"""`synthbox jobs`: add and inspect jobs."""

from __future__ import annotations

import json
from typing import Any

import click

from synthbox.cli.base import BadInput, with_engine
from synthbox.jobs import operations
from synthbox.jobs.errors import JobOptionError
from synthbox.jobs.options import flag_name
from synthbox.jobs.service import JOB_ID


@click.group()
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
