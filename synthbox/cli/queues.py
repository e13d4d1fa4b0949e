"""`synthbox queues`: counts, retries, cleaning, pause and resume; queues of your own
(create, edit, show, delete)."""

from __future__ import annotations

import json
from typing import Any

import click

from synthbox.actors import CLI
from synthbox.checks import parse_duration
from synthbox.cli.base import BadInput, with_engine
from synthbox.cli.queue_options import definition_from, definition_options
from synthbox.jobs import operations
from synthbox.jobs.errors import JobOptionError
from synthbox.records.models import STATES
from synthbox.userqueues import manage


@click.group("queues")
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


# -- queues of your own ---------------------------------------------------------------------

def _show(found: dict[str, Any]) -> None:
    click.echo(json.dumps(found, indent=2))


@queue_group.command("create")
@click.argument("name")
@definition_options
@with_engine
def create_queue(engine: Any, name: str, **options: Any) -> None:
    """Define queue NAME (every instance runs it within 2 s)."""
    _show(manage.create(engine, name, definition_from(options), CLI))


@queue_group.command("edit")
@click.argument("name")
@definition_options
@with_engine
def edit_queue(engine: Any, name: str, **options: Any) -> None:
    """Change the fields given of queue NAME (defined at run time)."""
    _show(manage.edit(engine, name, definition_from(options), CLI, merge=True))


@queue_group.command("show")
@click.argument("name")
@with_engine
def show_queue(engine: Any, name: str, **_: Any) -> None:
    """Queue NAME's definition and where it is defined."""
    _show(manage.describe(engine, name))


@queue_group.command("delete")
@click.argument("name")
@click.option("--drain", is_flag=True, help="Wait for its jobs to finish first.")
@click.option("--discard", is_flag=True,
              help="Delete its waiting jobs with it (with --drain: those left after --wait).")
@click.option("--wait", "wait_for", default="5m", show_default=True,
              help="With --drain: how long to wait.")
@with_engine
def delete_queue(engine: Any, name: str, drain: bool, discard: bool, wait_for: str,
                 **_: Any) -> None:
    """Delete queue NAME; refused while jobs wait, unless --drain or --discard."""
    try:
        wait = parse_duration(wait_for)
    except ValueError as exc:
        raise BadInput(f"--wait: {exc}") from None
    done = manage.delete(engine, name, CLI, drain=drain, discard=discard, wait=wait)
    click.echo(f"{name} deleted" + (f", {done['discarded']} job(s) discarded"
                                    if discard else ""))
