"""`synthbox queues`: counts, retries, cleaning, pause and resume."""

from __future__ import annotations

import json
from typing import Any

import click

from synthbox.actors import CLI
from synthbox.checks import parse_duration
from synthbox.cli.base import BadInput, with_engine
from synthbox.jobs import operations
from synthbox.jobs.errors import JobOptionError
from synthbox.records.models import STATES


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
